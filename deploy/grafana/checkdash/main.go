// Command kuzet-check-dashboard validates Grafana dashboard JSON files against the dashboard
// model of Grafana's own Foundation SDK (generated from Grafana's schema): a strict decode
// (unknown or mistyped fields are errors, panels and queries decoded through the registered
// panel and datasource plugin variants) followed by the model's Validate().
//
// On top of the schema it checks what Grafana would accept but an operator would not:
// a uid and title, unique panel ids, and a query expression on every Prometheus target.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

type rawPanel struct {
	ID      *int              `json:"id"`
	Type    string            `json:"type"`
	Title   string            `json:"title"`
	Targets []json.RawMessage `json:"targets"`
	Panels  []rawPanel        `json:"panels"`
}

type rawTarget struct {
	Expr string `json:"expr"`
}

// real turns the SDK's empty cog.BuildErrors (a non-nil interface holding a nil slice) into nil.
func real(err error) error {
	var built cog.BuildErrors
	if errors.As(err, &built) && len(built) == 0 {
		return nil
	}
	return err
}

func check(file string) []error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	var errs []error
	var dash dashboard.Dashboard
	if err := real(dash.UnmarshalJSONStrict(raw)); err != nil {
		errs = append(errs, fmt.Errorf("schema: %w", err))
	} else if err := real(dash.Validate()); err != nil {
		errs = append(errs, fmt.Errorf("validate: %w", err))
	}
	var loose struct {
		UID    string     `json:"uid"`
		Title  string     `json:"title"`
		Panels []rawPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &loose); err != nil {
		return append(errs, err)
	}
	if loose.UID == "" || loose.Title == "" {
		errs = append(errs, fmt.Errorf("dashboard needs a uid and a title"))
	}
	ids := map[int]string{}
	var walk func(ps []rawPanel)
	walk = func(ps []rawPanel) {
		for _, p := range ps {
			if p.ID == nil {
				errs = append(errs, fmt.Errorf("panel %q has no id", p.Title))
			} else if other, dup := ids[*p.ID]; dup {
				errs = append(errs, fmt.Errorf("panel id %d used by %q and %q", *p.ID, other, p.Title))
			} else {
				ids[*p.ID] = p.Title
			}
			if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
				errs = append(errs, fmt.Errorf("panel %q has no query", p.Title))
			}
			for i, t := range p.Targets {
				var rt rawTarget
				if err := json.Unmarshal(t, &rt); err != nil || rt.Expr == "" {
					errs = append(errs, fmt.Errorf("panel %q target %d has no expr", p.Title, i))
				}
			}
			walk(p.Panels)
		}
	}
	walk(loose.Panels)
	return errs
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kuzet-check-dashboard FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		if errs := check(file); len(errs) > 0 {
			failed = true
			for _, err := range errs {
				fmt.Fprintf(os.Stderr, "FAILED: %s: %v\n", file, err)
			}
			continue
		}
		fmt.Printf("SUCCESS: %s\n", file)
	}
	if failed {
		os.Exit(1)
	}
}
