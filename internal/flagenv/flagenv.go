// Package flagenv binds a table of options to a flag set: each flag has
// an environment variable, PREFIX<FLAG_IN_UPPER_SNAKE>, that stands in
// when the flag is not given, and the options' values can be logged. The
// flags, --help, the startup log line and the operator manual's table all
// come from one table.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Option is one setting: a flag, its default and help, and the field it
// fills.
type Option struct {
	Name string
	// Field points to a *string, *bool, *int, *time.Duration or
	// *slog.Level; Default is its default, of the pointed-to type.
	Field, Default any
	Help           string
}

// EnvName is the environment variable of flag name: with prefix
// DINTERO_FACADE_, grpc-addr becomes DINTERO_FACADE_GRPC_ADDR.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Register adds opts to fs as flags whose help names their environment
// variables. An option of another type is a program error: it panics.
func Register(fs *flag.FlagSet, prefix string, opts []Option) {
	for _, o := range opts {
		help := o.Help + " (env " + EnvName(prefix, o.Name) + ")"
		switch p := o.Field.(type) {
		case *string:
			fs.StringVar(p, o.Name, o.Default.(string), help)
		case *bool:
			fs.BoolVar(p, o.Name, o.Default.(bool), help)
		case *int:
			fs.IntVar(p, o.Name, o.Default.(int), help)
		case *time.Duration:
			fs.DurationVar(p, o.Name, o.Default.(time.Duration), help)
		case *slog.Level:
			fs.TextVar(p, o.Name, o.Default.(slog.Level), help)
		default:
			panic(fmt.Sprintf("option %s: unsupported field type %T", o.Name, o.Field))
		}
	}
}

// Parse parses args into fs and then, for each flag not given, its
// environment variable (read with getenv): the flag wins. It returns the
// names of the flags given on the command line.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) (given map[string]bool, err error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v := getenv(EnvName(prefix, f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(prefix, f.Name), err))
			}
		}
	})
	return given, errors.Join(errs...)
}

// Attrs are the options' current values, for a log line: each under its
// name in snake case.
func Attrs(opts []Option) []slog.Attr {
	out := make([]slog.Attr, 0, len(opts))
	for _, o := range opts {
		out = append(out, slog.Attr{Key: strings.ReplaceAll(o.Name, "-", "_"), Value: value(o.Field)})
	}
	return out
}

func value(field any) slog.Value {
	switch p := field.(type) {
	case *string:
		return slog.StringValue(*p)
	case *bool:
		return slog.BoolValue(*p)
	case *int:
		return slog.IntValue(*p)
	case *time.Duration:
		return slog.StringValue(p.String())
	case *slog.Level:
		return slog.StringValue(p.String())
	}
	return slog.StringValue(fmt.Sprint(field))
}
