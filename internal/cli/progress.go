package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressDelay is how long a step may take before a spinner appears: a
// quick command should not flicker.
const progressDelay = 300 * time.Millisecond

// Progress shows what a slow command is waiting for, on stderr and only on
// a terminal, and erases itself when done so the output stays clean.
type Progress struct {
	w     io.Writer
	mu    sync.Mutex
	msg   string
	drawn bool
	stop  chan struct{}
	done  chan struct{}
}

// NewProgress starts a progress indicator on w; it draws nothing unless w
// is a terminal.
func NewProgress(w io.Writer) *Progress { return startProgress(w, IsTerminal(w)) }

func startProgress(w io.Writer, terminal bool) *Progress {
	p := &Progress{w: w}
	if !terminal {
		return p
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop()
	return p
}

// Step names what is being waited for now.
func (p *Progress) Step(msg string) {
	p.mu.Lock()
	p.msg = msg
	p.mu.Unlock()
}

// Stop erases the indicator; it is safe to call more than once.
func (p *Progress) Stop() {
	if p.stop == nil {
		return
	}
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
}

func (p *Progress) loop() {
	defer close(p.done)
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	start := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			p.mu.Lock()
			if p.drawn {
				fmt.Fprint(p.w, "\r\x1b[K")
			}
			p.mu.Unlock()
			return
		case <-t.C:
		}
		if time.Since(start) < progressDelay {
			continue
		}
		p.mu.Lock()
		fmt.Fprintf(p.w, "\r\x1b[K%s %s (%s)", frames[i%len(frames)], p.msg, time.Since(start).Round(time.Second))
		p.drawn = true
		p.mu.Unlock()
	}
}
