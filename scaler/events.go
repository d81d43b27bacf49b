package scaler

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
)

// syncRecorder writes each Event before returning. A command that exits
// right after its one action would lose the Event in tools/record's
// asynchronous broadcaster, which has no flush.
type syncRecorder struct {
	c   kubernetes.Interface
	log log.Logger
	now func() time.Time
}

// NewSyncRecorder returns an EventRecorder for short-lived commands.
func NewSyncRecorder(c kubernetes.Interface, logger log.Logger) record.EventRecorder {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return syncRecorder{c: c, log: logger, now: time.Now}
}

func (r syncRecorder) Event(obj runtime.Object, eventtype, reason, message string) {
	ref, err := reference.GetReference(scheme.Scheme, obj)
	if err != nil {
		level.Warn(r.log).Log("msg", "cannot reference the object of an Event", "err", err)
		return
	}
	now := metav1.NewTime(r.now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: ref.Name + ".", Namespace: ref.Namespace},
		InvolvedObject: *ref,
		Type:           eventtype,
		Reason:         reason,
		Message:        message,
		Source:         corev1.EventSource{Component: fieldManager},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.c.CoreV1().Events(ref.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		level.Warn(r.log).Log("msg", "cannot write Event", "reason", reason, "err", err)
	}
}

func (r syncRecorder) Eventf(obj runtime.Object, eventtype, reason, format string, args ...any) {
	r.Event(obj, eventtype, reason, fmt.Sprintf(format, args...))
}

func (r syncRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventtype, reason, format string, args ...any) {
	r.Eventf(obj, eventtype, reason, format, args...)
}
