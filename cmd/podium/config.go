package main

// Configuration: every flag of a command may also come from the environment
// (PODIUM_<FLAG>, upper case, dashes to underscores) or from a flat YAML file
// given with --config (`flag-name: value`). Precedence: flag > env > file >
// default. Each part registers its own flags on the command's FlagSet; this
// file only knows how to fill them.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// envName is the environment variable that sets a flag.
func envName(flagName string) string {
	return "PODIUM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig parses args into fs, then fills every flag not given on the
// command line from the environment, then from the YAML file named by
// --config (or PODIUM_CONFIG). configFlag is the name of the flag holding the
// file path ("" when the command takes no file). getenv is os.Getenv in
// production.
func loadConfig(fs *flag.FlagSet, args []string, configFlag string, getenv func(string) string) error {
	// Print the flag list only when asked, not after every mistake.
	out := fs.Output()
	fs.Usage = func() {}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fmt.Fprintf(out, "usage of %s (every flag is also PODIUM_<FLAG>, or a key of the --config file):\n", fs.Name())
			fs.PrintDefaults()
			return flag.ErrHelp
		}
		if a == "--" {
			break
		}
	}
	fs.SetOutput(io.Discard) // the caller reports parse errors once, itself
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// Environment: fills what the command line left unset.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		v, ok := lookupEnv(getenv, envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, err))
			return
		}
		set[f.Name] = true
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if configFlag == "" {
		return nil
	}
	path := fs.Lookup(configFlag).Value.String()
	if path == "" {
		return nil
	}
	values, err := readConfigFile(path)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == configFlag {
			errs = append(errs, fmt.Errorf("config %s: key %q cannot be set inside the file", path, k))
			continue
		}
		if fs.Lookup(k) == nil {
			errs = append(errs, fmt.Errorf("config %s: unknown key %q (keys are flag names, e.g. http-addr)", path, k))
			continue
		}
		if set[k] {
			continue
		}
		for _, v := range values[k] {
			if err := fs.Set(k, v); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s: %q: %w", path, k, v, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		return os.LookupEnv(name)
	}
	v := getenv(name)
	return v, v != ""
}

// readConfigFile reads a flat YAML mapping of flag names to scalars (or lists
// of scalars for repeatable flags).
func readConfigFile(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := map[string][]string{}
	if len(doc.Content) == 0 {
		return out, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: want a mapping of flag names to values", path)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("config %s:%d: key %q given twice", path, k.Line, k.Value)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			out[k.Value] = []string{v.Value}
		case yaml.SequenceNode:
			vals := []string{}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("config %s:%d: %s: list items must be plain values", path, item.Line, k.Value)
				}
				vals = append(vals, item.Value)
			}
			out[k.Value] = vals
		default:
			return nil, fmt.Errorf("config %s:%d: %s: want a plain value or a list, not a mapping", path, v.Line, k.Value)
		}
	}
	return out, nil
}

// listFlag is a repeatable flag that also takes comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set appends; an element "none" empties the list first (to drop a
// default: "none,10.1.2.3/32").
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "none" {
			*l = listFlag{}
		} else if p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// checkPort validates a port number; allowDisable permits -1.
func checkPort(name string, p int, allowDisable bool) error {
	if allowDisable && p == -1 {
		return nil
	}
	if p < 0 || p > 65535 {
		if allowDisable {
			return fmt.Errorf("--%s: port %d out of range (0-65535, 0 = any free port, -1 = off)", name, p)
		}
		return fmt.Errorf("--%s: port %d out of range (0-65535, 0 = any free port)", name, p)
	}
	return nil
}

// checkListenAddr validates host:port.
func checkListenAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s: %q is not host:port: %w", name, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--%s: bad port %q in %q", name, port, addr)
	}
	return nil
}

func readFileTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
