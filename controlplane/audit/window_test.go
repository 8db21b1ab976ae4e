package audit

import (
	"testing"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestInWindow_Success(t *testing.T) {
	weekdays := v1alpha1.ChangeWindow{Days: []string{"Mon", "Tue", "Wed", "Thu", "Fri"}, From: "09:00", To: "17:00"}
	paris := v1alpha1.ChangeWindow{Days: []string{"Tue"}, From: "10:00", To: "12:00", Timezone: "Europe/Paris"}
	tokyo := v1alpha1.ChangeWindow{Days: []string{"Mon"}, From: "00:00", To: "02:00", Timezone: "Asia/Tokyo"}
	late := v1alpha1.ChangeWindow{Days: []string{"Sun"}, From: "23:00", To: "23:59", Timezone: "UTC"}
	tests := []struct {
		name string
		ws   []v1alpha1.ChangeWindow
		t    string
		want bool
	}{
		{"no windows declared", nil, "2026-11-29T03:00:00Z", true},
		{"weekday inside", []v1alpha1.ChangeWindow{weekdays}, "2026-11-25T12:00:00Z", true}, // Wednesday
		{"from is included", []v1alpha1.ChangeWindow{weekdays}, "2026-11-25T09:00:00Z", true},
		{"to is excluded", []v1alpha1.ChangeWindow{weekdays}, "2026-11-25T17:00:00Z", false},
		{"last minute before to", []v1alpha1.ChangeWindow{weekdays}, "2026-11-25T16:59:59Z", true},
		{"weekend", []v1alpha1.ChangeWindow{weekdays}, "2026-11-28T12:00:00Z", false}, // Saturday
		// 2026-11-24 is a Tuesday; Paris is UTC+1 in winter, UTC+2 in summer.
		{"paris winter: 09:30Z is 10:30 local", []v1alpha1.ChangeWindow{paris}, "2026-11-24T09:30:00Z", true},
		{"paris winter: 11:30Z is 12:30 local", []v1alpha1.ChangeWindow{paris}, "2026-11-24T11:30:00Z", false},
		{"paris summer: 08:30Z is 10:30 local", []v1alpha1.ChangeWindow{paris}, "2026-06-23T08:30:00Z", true},
		{"paris summer: 10:30Z is 12:30 local", []v1alpha1.ChangeWindow{paris}, "2026-06-23T10:30:00Z", false},
		// Sunday 16:30 UTC is Monday 01:30 in Tokyo: the day is the local one.
		{"day boundary: sunday UTC is monday in tokyo", []v1alpha1.ChangeWindow{tokyo}, "2026-11-29T16:30:00Z", true},
		{"day boundary: monday UTC is monday evening in tokyo", []v1alpha1.ChangeWindow{tokyo}, "2026-11-30T01:30:00Z", false},
		{"offset of t does not matter", []v1alpha1.ChangeWindow{tokyo}, "2026-11-30T01:30:00+09:00", true},
		{"late sunday", []v1alpha1.ChangeWindow{late}, "2026-11-29T23:58:00Z", true},
		{"midnight is monday", []v1alpha1.ChangeWindow{late}, "2026-11-30T00:00:00Z", false},
		{"second window matches", []v1alpha1.ChangeWindow{weekdays, late}, "2026-11-29T23:30:00Z", true},
		{"empty timezone is UTC", []v1alpha1.ChangeWindow{{Days: []string{"Sat"}, From: "11:00", To: "13:00"}}, "2026-11-28T12:00:00Z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := InWindow(tt.ws, at(t, tt.t))
			if err != nil {
				t.Fatalf("InWindow: %v", err)
			}
			if got != tt.want {
				t.Errorf("InWindow(%s) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

func TestInWindow_Errors(t *testing.T) {
	good := v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "11:00", To: "13:00"}
	tests := []struct {
		name string
		w    v1alpha1.ChangeWindow
	}{
		{"unknown timezone", v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "11:00", To: "13:00", Timezone: "Mars/Olympus"}},
		{"local timezone", v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "11:00", To: "13:00", Timezone: "Local"}},
		{"unknown day", v1alpha1.ChangeWindow{Days: []string{"Saturday"}, From: "11:00", To: "13:00"}},
		{"bad from", v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "11h", To: "13:00"}},
		{"hour out of range", v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "11:00", To: "24:00"}},
		{"to before from", v1alpha1.ChangeWindow{Days: []string{"Sat"}, From: "13:00", To: "11:00"}},
	}
	// Saturday 2026-11-28 12:00 UTC lies inside good.
	now := at(t, "2026-11-28T12:00:00Z")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := InWindow([]v1alpha1.ChangeWindow{tt.w}, now)
			if err == nil || got {
				t.Fatalf("InWindow = %v, %v; want false and an error", got, err)
			}
			// A valid window that matches still says true.
			got, err = InWindow([]v1alpha1.ChangeWindow{tt.w, good}, now)
			if !got || err != nil {
				t.Errorf("with a matching valid window: %v, %v; want true, nil", got, err)
			}
		})
	}
}
