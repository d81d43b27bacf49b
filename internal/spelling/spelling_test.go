package spelling

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"level", "format", "listen_address"}
	tests := []struct {
		in, want string
	}{
		{"levle", "level"},
		{"fromat", "format"},
		{"level", "level"},
		{"colour", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := Closest(tc.in, keys, 3); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := distance("kitten", "sitting"); d != 3 {
		t.Errorf("distance(kitten, sitting) = %d, want 3", d)
	}
}
