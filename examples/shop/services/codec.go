package services

import (
	"encoding/json"
	"fmt"
)

// Codec is the JSON wire codec of the shop's messages. The shop defines its
// services with hand-written grpc.ServiceDesc values and plain Go structs
// instead of generated protobuf code, so the example builds without protoc.
// Servers install it with grpc.ForceServerCodec and clients with
// grpc.ForceCodec (CallOptions does both), which keeps it out of grpc-go's
// process-wide codec registry. Codec is stateless and safe for concurrent use.
type Codec struct{}

// Marshal encodes v as JSON.
func (Codec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("services: marshal %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes JSON data into v, a pointer to a message.
func (Codec) Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("services: unmarshal %T: %w", v, err)
	}
	return nil
}

// Name is the gRPC content subtype: messages travel as application/grpc+json.
func (Codec) Name() string { return "json" }
