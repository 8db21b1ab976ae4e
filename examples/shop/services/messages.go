package services

// Order is the request of Gateway/Checkout and Orders/PlaceOrder.
type Order struct {
	// ID names the order; the caller's idempotency key travels beside it as
	// metadata.
	ID string `json:"id"`
	// SKU is the article ordered.
	SKU string `json:"sku"`
	// Quantity is how many are ordered.
	Quantity int `json:"quantity"`
	// AmountCents is the price to charge, in cents.
	AmountCents int64 `json:"amountCents"`
}

// Charge is the request of Payments/CreateCharge.
type Charge struct {
	// OrderID is the order being paid.
	OrderID string `json:"orderId"`
	// AmountCents is the amount, in cents.
	AmountCents int64 `json:"amountCents"`
}

// Entry is the request of Ledger/PostEntry.
type Entry struct {
	// ChargeID is the charge being booked.
	ChargeID string `json:"chargeId"`
	// AmountCents is the amount, in cents.
	AmountCents int64 `json:"amountCents"`
}

// Reservation is the request of Inventory/Reserve.
type Reservation struct {
	// OrderID is the order the stock is held for.
	OrderID string `json:"orderId"`
	// SKU is the article.
	SKU string `json:"sku"`
	// Quantity is how many are held.
	Quantity int `json:"quantity"`
}

// Ack is the reply of every shop method: the id of what was created.
type Ack struct {
	// ID identifies the created order, charge, entry or reservation.
	ID string `json:"id"`
}
