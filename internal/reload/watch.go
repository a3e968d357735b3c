package reload

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options are what each watcher of this package takes.
type Options struct {
	// Log takes a line for every reload, done or refused. Required.
	Log *slog.Logger
	// Signal, when it fires, reloads at once (main sends SIGHUP here).
	// Each watcher needs a channel of its own: see Fanout.
	Signal <-chan struct{}
	// Metrics counts the reloads; nil counts nothing.
	Metrics *Metrics
}

// Fanout passes every signal from in to each of n channels, so that one
// SIGHUP reloads every watcher; a signal a watcher has not taken yet is
// not doubled. It stops when ctx ends. A nil in gives channels that never
// fire.
func Fanout(ctx context.Context, in <-chan struct{}, n int) []<-chan struct{} {
	outs := make([]chan struct{}, n)
	ro := make([]<-chan struct{}, n)
	for i := range outs {
		outs[i] = make(chan struct{}, 1)
		ro[i] = outs[i]
	}
	if in == nil {
		return ro
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-in:
				for _, o := range outs {
					select {
					case o <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return ro
}

// kind names what a watcher reloads, in its log lines and metrics.
type kind struct {
	label    string // the metrics' file label
	reloaded string // the log line of a reload done
	refused  string // the log line of a file that does not load
}

// watch calls load when one of files changes (a burst of events once it
// settles) and when o.Signal fires, until ctx ends, and logs and counts
// each outcome. It watches directories, not files, so that a Kubernetes
// Secret or ConfigMap, replaced by a symlink swap (..data), is seen; an
// event on any other name in those directories is ignored, since a file
// written beside them (the facade's own log, redirected there, above all)
// would otherwise reload them in a loop, every line a reload logs being
// the next change. load returns the attributes of the reload's log line;
// on error the previous content stays in force, which is load's to ensure.
func watch(ctx context.Context, k kind, files []string, o Options, load func() ([]any, error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching the %s: %w", k.label, err)
	}
	dirs := map[string]bool{}
	watched := map[string]bool{}
	for _, f := range files {
		dir := filepath.Dir(f)
		if f == "" {
			continue
		}
		watched[filepath.Clean(f)] = true
		watched[filepath.Join(dir, "..data")] = true
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		if err := w.Add(dir); err != nil {
			w.Close()
			return fmt.Errorf("watching %s: %w", dir, err)
		}
	}
	o.Metrics.loaded(k.label)
	go func() {
		defer w.Close()
		debounce(ctx, w, watched, o.Signal, o.Log, func(why string) {
			attrs, err := load()
			o.Metrics.reloaded(k.label, err)
			if err != nil {
				o.Log.Error(k.refused, "why", why, "error", err.Error())
				return
			}
			o.Log.Info(k.reloaded, append([]any{"why", why}, attrs...)...)
		})
	}()
	return nil
}

// debounce calls changed("file changed") once a burst of w's events on the
// paths in watched has settled (a symlink swap is several events), and
// changed("SIGHUP") on each signal from reload, until ctx ends.
func debounce(ctx context.Context, w *fsnotify.Watcher, watched map[string]bool, reload <-chan struct{}, log *slog.Logger, changed func(why string)) {
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			changed("SIGHUP")
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if (ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write)) || !watched[filepath.Clean(ev.Name)] {
				continue
			}
			timer.Reset(settle)
		case <-timer.C:
			changed("file changed")
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("watching files", "error", err.Error())
		}
	}
}
