package testenv

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunPods plays the scheduler and a kubelet for the pods of namespace
// until t ends: it creates node, binds every pending pod to it, reports
// each pod Running and Ready, and completes deletions (a kubelet confirms
// a pod is gone). Controllers that wait for available replicas (a
// Deployment's rollout, Argo Rollouts' Healthy phase) then progress as in
// a cluster, without containers.
func (k *Kube) RunPods(t testing.TB, namespace, node string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := k.Clientset
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}}, metav1.CreateOptions{}); err != nil {
		cancel()
		t.Fatalf("testenv: node %s: %v", node, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		zero := int64(0)
		for ctx.Err() == nil {
			pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					switch {
					case p.DeletionTimestamp != nil:
						_ = c.CoreV1().Pods(namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
					case p.Spec.NodeName == "":
						_ = c.CoreV1().Pods(namespace).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
					case p.Status.Phase != corev1.PodRunning:
						now := metav1.Now()
						p.Status.Phase = corev1.PodRunning
						p.Status.StartTime = &now
						p.Status.Conditions = []corev1.PodCondition{
							{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
							{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
						}
						p.Status.ContainerStatuses = nil
						for _, ctr := range p.Spec.Containers {
							p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, Ready: true,
								State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
						}
						_, _ = c.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}
