//go:build !race

package demo

const slowdown = 1
