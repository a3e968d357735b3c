// Package flagenv binds a table of options to a flag set: each flag has
// an environment variable, PREFIX<FLAG_IN_UPPER_SNAKE>, that stands in
// when the flag is not given, and the options' values can be logged. The
// flags, --help, the startup log line and the operator manual's table all
// come from one table. A value that does not parse is refused naming the
// flag or the variable, the form it must have and an example.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Option is one setting: a flag, its default and help, and the field it
// fills.
type Option struct {
	Name string
	// Field points to a *string, *bool, *int, *float64, *time.Duration or
	// *slog.Level; Default is its default, of the pointed-to type.
	Field, Default any
	Help           string
}

// EnvName is the environment variable of flag name: with prefix
// DINTERO_FACADE_, grpc-addr becomes DINTERO_FACADE_GRPC_ADDR.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ValueError is a value of a flag or a variable that does not parse.
type ValueError struct {
	// Source is the flag (--max-deadline) or the variable
	// (DINTERO_FACADE_MAX_DEADLINE) that had it.
	Source string
	Value  string
	// Want is the form a value must have, with an example.
	Want string
}

func (e *ValueError) Error() string {
	v := e.Value
	if len(v) > maxQuoted {
		v = v[:maxQuoted] + "…"
	}
	sep := " "
	if !strings.HasPrefix(e.Source, "-") {
		sep = "="
	}
	return fmt.Sprintf("%s%s%q: want %s", e.Source, sep, v, e.Want)
}

// maxQuoted bounds how much of a bad value an error quotes.
const maxQuoted = 64

// value is a flag.Value over an option's field of type T, which parses as
// T and remembers the last value it refused.
type value[T any] struct {
	p     *T
	parse func(string) (T, error)
	// want is the form a value must have, with an example.
	want    string
	refused *ValueError
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		// The flag package words its own error; Parse gives ours.
		v.refused = &ValueError{Value: s, Want: v.want}
		return errors.New("invalid value")
	}
	*v.p = x
	return nil
}

// String is the value's text. The flag package calls it on a value of no
// field to learn whether a default is worth printing in --help: that is ""
// (false for a switch), not T's zero, since a zero can be a default that
// needs saying (slog.Level's zero is INFO, a Duration's 0s).
func (v *value[T]) String() string {
	if v == nil || v.p == nil {
		if v.IsBoolFlag() {
			return "false"
		}
		return ""
	}
	return fmt.Sprint(*v.p)
}

// IsBoolFlag lets a bool flag stand alone (--mock).
func (v *value[T]) IsBoolFlag() bool {
	_, ok := any((*T)(nil)).(*bool)
	return ok
}

func (v *value[T]) lastRefused() *ValueError { return v.refused }

// refuser is every value[T].
type refuser interface{ lastRefused() *ValueError }

// bind makes the flag.Value of field p with default def.
func bind[T any](p *T, def any, parse func(string) (T, error), want string) flag.Value {
	*p = def.(T)
	return &value[T]{p: p, parse: parse, want: want}
}

// durationForm is the form of a duration.
const durationForm = "a duration such as 20s or 1m30s"

// Register adds opts to fs as flags whose help names their environment
// variables. An option of another type is a program error: it panics.
func Register(fs *flag.FlagSet, prefix string, opts []Option) {
	for _, o := range opts {
		var v flag.Value
		switch p := o.Field.(type) {
		case *string:
			v = bind(p, o.Default, func(s string) (string, error) { return s, nil }, "a string")
		case *bool:
			v = bind(p, o.Default, strconv.ParseBool, "true or false")
		case *int:
			v = bind(p, o.Default, func(s string) (int, error) {
				n, err := strconv.ParseInt(s, 10, strconv.IntSize)
				return int(n), err
			}, fmt.Sprintf("a whole number such as %v", o.Default))
		case *float64:
			v = bind(p, o.Default, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }, "a number such as 0.5")
		case *time.Duration:
			v = bind(p, o.Default, time.ParseDuration, durationForm)
		case *slog.Level:
			v = bind(p, o.Default, func(s string) (slog.Level, error) {
				var l slog.Level
				return l, l.UnmarshalText([]byte(s))
			}, "debug, info, warn or error")
		default:
			panic(fmt.Sprintf("option %s: unsupported field type %T", o.Name, o.Field))
		}
		fs.Var(v, o.Name, o.Help+" (env "+EnvName(prefix, o.Name)+")")
	}
}

// Parse parses args into fs and then, for each flag not given, its
// environment variable (read with getenv): the flag wins. It returns the
// names of the flags given, on the command line or by their variable. A
// value that does not parse is a *ValueError. --help is flag.ErrHelp: the
// caller prints the usage (fs's output is not written to).
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) (given map[string]bool, err error) {
	// The flag package would print its own wording of an error, and the
	// whole usage, to the output: the caller prints ours instead.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		var bad error
		fs.VisitAll(func(f *flag.Flag) {
			if v, ok := f.Value.(refuser); ok && v.lastRefused() != nil {
				e := *v.lastRefused()
				e.Source = "--" + f.Name
				bad = &e
			}
		})
		if bad != nil {
			return nil, bad
		}
		return nil, plainFlagError(err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q (every setting is a --flag or its variable)", fs.Args())
	}
	given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := EnvName(prefix, f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				e := &ValueError{Source: env, Value: v, Want: "a valid value"}
				if r, ok := f.Value.(refuser); ok && r.lastRefused() != nil {
					e.Want = r.lastRefused().Want
				}
				errs = append(errs, e)
				return
			}
			given[f.Name] = true
		}
	})
	return given, errors.Join(errs...)
}

// plainFlagError rewords the flag package's errors about the command line
// with the flags' double dash.
func plainFlagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s", strings.TrimPrefix(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value", strings.TrimPrefix(name, "-"))
	}
	return err
}

// Attrs are the options' current values, for a log line: each under its
// name in snake case.
func Attrs(opts []Option) []slog.Attr {
	out := make([]slog.Attr, 0, len(opts))
	for _, o := range opts {
		out = append(out, slog.Attr{Key: strings.ReplaceAll(o.Name, "-", "_"), Value: valueOf(o.Field)})
	}
	return out
}

func valueOf(field any) slog.Value {
	switch p := field.(type) {
	case *string:
		return slog.StringValue(*p)
	case *bool:
		return slog.BoolValue(*p)
	case *int:
		return slog.IntValue(*p)
	case *float64:
		return slog.Float64Value(*p)
	case *time.Duration:
		return slog.StringValue(p.String())
	case *slog.Level:
		return slog.StringValue(p.String())
	}
	return slog.StringValue(fmt.Sprint(field))
}
