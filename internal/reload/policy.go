package reload

import (
	"context"
	"fmt"

	"github.com/dintero-facade/dintero-facade/service"
)

// PolicyTarget takes a reloaded policy: service.Server.
type PolicyTarget interface {
	SetPolicy(*service.Policy) error
}

// WatchPolicy reloads --policy-file into target when the file changes (a
// ConfigMap's update is a symlink swap) and when o.Signal fires (SIGHUP),
// until ctx ends: a rule removed revokes a caller without a restart. A file
// that does not load is logged, naming what is wrong, and ignored: the
// previous policy stays.
func WatchPolicy(ctx context.Context, file string, target PolicyTarget, o Options) error {
	k := kind{label: "policy", reloaded: "policy reloaded", refused: "policy not reloaded: keeping the previous one"}
	return watch(ctx, k, []string{file}, o, func() ([]any, error) {
		p, err := service.LoadPolicy(file)
		if err != nil {
			return nil, fmt.Errorf("--policy-file: %w", err)
		}
		if err := target.SetPolicy(p); err != nil {
			return nil, err
		}
		return []any{"rules", len(p.Rules)}, nil
	})
}
