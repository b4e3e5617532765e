// Command kuzet-check-rules validates Prometheus rule files the way `promtool check rules` does:
// it parses them with Prometheus' own rulefmt package (strict YAML fields, PromQL expressions,
// label and annotation templates) and also refuses duplicate alert names within a file.
//
// Why a small program instead of promtool: promtool links every service-discovery backend
// (Kubernetes, cloud SDKs) and takes many minutes to build on a small machine; the rule
// checking itself lives in rulefmt, which this program calls unchanged.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kuzet-check-rules FILE...")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(
			file, false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger(),
		)
		if len(errs) == 0 && groups != nil {
			seen := map[string]bool{}
			for _, g := range groups.Groups {
				for _, r := range g.Rules {
					if r.Alert == "" {
						continue
					}
					if seen[r.Alert] {
						errs = append(errs, fmt.Errorf("%s: duplicate alert name %q", file, r.Alert))
					}
					seen[r.Alert] = true
				}
			}
		}
		if len(errs) > 0 {
			failed = true
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, "FAILED:", err)
			}
			continue
		}
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		fmt.Printf("SUCCESS: %s: %d group(s), %d rule(s)\n", file, len(groups.Groups), n)
	}
	if failed {
		os.Exit(1)
	}
}
