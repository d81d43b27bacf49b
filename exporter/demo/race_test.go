//go:build race

package demo

// The race detector slows the loader down about tenfold.
const slowdown = 10
