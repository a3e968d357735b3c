package reload

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce calls changed("file changed") once a burst of w's events has
// settled (a symlink swap is several events), and changed("SIGHUP") on each
// signal from reload, until ctx ends.
func debounce(ctx context.Context, w *fsnotify.Watcher, reload <-chan struct{}, log *slog.Logger, changed func(why string)) {
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
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
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
