package argorollouts

import "testing"

func TestRevision(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		want        int64
	}{
		{nil, 0},
		{map[string]string{RevisionAnnotation: "12"}, 12},
		{map[string]string{RevisionAnnotation: "x"}, 0},
		{map[string]string{RevisionAnnotation: "-3"}, 0},
		{map[string]string{"deployment.kubernetes.io/revision": "4"}, 0},
	} {
		if got := Revision(tc.annotations); got != tc.want {
			t.Errorf("Revision(%v) = %d, want %d", tc.annotations, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b [2]int64 // revision, created
		want bool
	}{
		{[2]int64{3, 10}, [2]int64{2, 20}, true}, // a rollback's revision is new, its ReplicaSet old
		{[2]int64{2, 20}, [2]int64{3, 10}, false},
		{[2]int64{0, 20}, [2]int64{0, 10}, true},
		{[2]int64{0, 10}, [2]int64{0, 10}, false},
	} {
		if got := Later(tc.a[0], tc.a[1], tc.b[0], tc.b[1]); got != tc.want {
			t.Errorf("Later(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if Resource.GroupVersion().String() != APIVersion {
		t.Errorf("Resource %v is not in %s", Resource, APIVersion)
	}
}
