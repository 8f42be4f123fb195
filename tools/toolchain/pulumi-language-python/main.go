// Command pulumi-language-python is Kumeo's build of the Pulumi language host for Python programs.
//
// Upstream's host lives in its own Go module (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3),
// which the Go module proxy available to us does not serve. This host implements the same gRPC contract
// (pulumirpc.LanguageRuntime) on top of the pieces that are served in github.com/pulumi/pulumi/sdk/v3 at the
// CLI's version: the Python toolchain resolver (pip / poetry / uv, virtualenv handling), the RPC helpers and the
// pulumi-plugin.json reader. Programs run through upstream's own `pulumi-language-python-exec` script, which
// `make toolchain` copies next to this binary from the same sdk/v3 module.
//
// Implemented: Handshake, GetPluginInfo, GetRequiredPackages (and the older GetRequiredPlugins), Run, RunPlugin
// (policy packs and Python component providers), InstallDependencies, About, GetProgramDependencies,
// RuntimeOptionsPrompts. Code generation (GenerateProgram/Project/Package, Pack, Link, Template) answers
// Unimplemented, so `pulumi convert --language python` and `pulumi package gen-sdk --language python` need
// upstream's host.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// execScript is the Python shim that configures the SDK from its flags and runs the program; it sits next to us.
const execScript = "pulumi-language-python-exec"

// exitAfterUserMessage is the exit code the exec shim uses when it already reported the error to the user.
const exitAfterUserMessage = 32

func main() {
	// The engine passes --tracing and, with logflow, --logtostderr / -v (registered by the logging package);
	// the only positional argument is the engine's address.
	flag.String("tracing", "", "Zipkin-compatible tracing endpoint (accepted, not used)")
	flag.Parse()
	logging.InitLogging(false, 0, false)

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	self, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("locating this executable: %w", err))
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	exec := filepath.Join(filepath.Dir(self), execScript)
	if _, err := os.Stat(exec); err != nil {
		fail(fmt.Errorf("missing %s next to %s: %w", execScript, self, err))
	}

	host := &pythonHost{engineAddress: engineAddress, execPath: exec}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fail(fmt.Errorf("starting the language host's RPC server: %w", err))
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(fmt.Errorf("language host RPC server stopped: %w", err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	execPath      string
}

func (h *pythonHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// pythonOptions turns a project's `runtime.options` (Pulumi.yaml / PulumiPolicy.yaml / PulumiPlugin.yaml) into the
// toolchain's options. Recognised: toolchain (pip|poetry|uv), virtualenv (relative to the project root) and
// typechecker (mypy|pyright).
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
	}
	var raw map[string]any
	if info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("runtime option %q must be a string, got %T", key, v)
		}
		return s, nil
	}
	var err error
	if opts.Virtualenv, err = str("virtualenv"); err != nil {
		return opts, err
	}
	tc, err := str("toolchain")
	if err != nil {
		return opts, err
	}
	switch strings.ToLower(tc) {
	case "":
		// Auto: uv or poetry when their lock file is present, pip otherwise.
	case "pip":
		opts.Toolchain = toolchain.Pip
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return opts, fmt.Errorf("unsupported runtime option toolchain=%q (pip, poetry or uv)", tc)
	}
	checker, err := str("typechecker")
	if err != nil {
		return opts, err
	}
	switch strings.ToLower(checker) {
	case "":
	case "mypy":
		opts.Typechecker = toolchain.TypeCheckerMypy
	case "pyright":
		opts.Typechecker = toolchain.TypeCheckerPyright
	default:
		return opts, fmt.Errorf("unsupported runtime option typechecker=%q (mypy or pyright)", checker)
	}
	return opts, nil
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, toolchain.Toolchain, error) {
	opts, err := pythonOptions(info)
	if err != nil {
		return opts, nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	return opts, tc, err
}

// command builds `python ARGS...` for the resolved toolchain with a complete environment.
func command(ctx context.Context, tc toolchain.Toolchain, args ...string) (*exec.Cmd, error) {
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	return cmd, nil
}

// Run executes a Pulumi program through the exec shim and reports how it ended.
func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.GetPwd(), ProgramDirectory: req.GetPwd(), EntryPoint: "."}
	}
	opts, tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("%v (create it with `pulumi install`)", err)}, nil
	}
	if opts.Typechecker != toolchain.TypeCheckerNone {
		if msg := typecheck(ctx, tc, opts); msg != "" {
			return &pulumirpc.RunResponse{Error: msg}, nil
		}
	}

	program := info.GetEntryPoint()
	if program == "" {
		program = "."
	}
	if !filepath.IsAbs(program) {
		program = filepath.Join(info.GetProgramDirectory(), program)
	}

	args := []string{"-u", h.execPath}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engine())
	flagArg("project", req.GetProject())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	flagArg("root_directory", info.GetRootDirectory())
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := command(ctx, tc, args...)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetPwd()
	if cfg := req.GetConfig(); len(cfg) > 0 {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("serialising config: %w", err)
		}
		cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(b))
	}
	if keys := req.GetConfigSecretKeys(); len(keys) > 0 {
		b, err := json.Marshal(keys)
		if err != nil {
			return nil, fmt.Errorf("serialising secret config keys: %w", err)
		}
		cmd.Env = append(cmd.Env, "PULUMI_CONFIG_SECRET_KEYS="+string(b))
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	logging.V(5).Infof("language host launching: %s (in %s)", strings.Join(cmd.Args, " "), cmd.Dir)

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python program: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// typecheck runs mypy or pyright over the program directory; it returns their report when they find errors.
func typecheck(ctx context.Context, tc toolchain.Toolchain, opts toolchain.PythonOptions) string {
	module := "mypy"
	if opts.Typechecker == toolchain.TypeCheckerPyright {
		module = "pyright"
	}
	cmd, err := tc.ModuleCommand(ctx, module, opts.ProgramDir)
	if err != nil {
		return err.Error()
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Dir = opts.ProgramDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s found errors (or is not installed in the program's environment):\n%s", module, out)
	}
	return ""
}

// listPluginsScript prints, as JSON, every installed distribution that ships a pulumi-plugin.json (or the older
// pulumiplugin.json) beside its top-level package, plus the "pulumi-*" distributions that ship none.
const listPluginsScript = `
import importlib.metadata as md, importlib.util, json, os
found, seen = [], set()
names = ("pulumi-plugin.json", "pulumiplugin.json")
for dist in md.distributions():
    name = dist.metadata["Name"] or ""
    key = name.lower().replace("_", "-")
    if not key or key in seen:
        continue
    seen.add(key)
    path = None
    for f in dist.files or ():
        if len(f.parts) == 2 and f.parts[1] in names:
            path = str(dist.locate_file(f))
            break
    if path is None:
        try:
            spec = importlib.util.find_spec(key.replace("-", "_"))
        except Exception:
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            for n in names:
                if os.path.exists(os.path.join(loc, n)):
                    path = os.path.join(loc, n)
                    break
            if path:
                break
    if path or key.startswith("pulumi-"):
        found.append({"name": key, "version": dist.version, "plugin": path})
print(json.dumps(found))
`

type pythonDist struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Plugin  string `json:"plugin"`
}

// plainVersion matches Python versions that are also semver versions (no pre-release or local parts).
var plainVersion = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

func (h *pythonHost) requiredPackages(
	ctx context.Context, info *pulumirpc.ProgramInfo,
) ([]*pulumirpc.PackageDependency, error) {
	_, tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		// Nothing is installed yet, so nothing is required; Run reports the missing environment.
		logging.V(5).Infof("GetRequiredPackages: %v", err)
		return nil, nil
	}
	cmd, err := command(ctx, tc, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.GetProgramDirectory()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing installed Python packages: %w: %s", err, stderr.String())
	}
	var dists []pythonDist
	if err := json.Unmarshal(out, &dists); err != nil {
		return nil, fmt.Errorf("parsing installed Python packages: %w", err)
	}

	var deps []*pulumirpc.PackageDependency
	for _, d := range dists {
		dep := &pulumirpc.PackageDependency{Kind: "resource"}
		if d.Plugin != "" {
			meta, err := plugin.LoadPulumiPluginJSON(d.Plugin)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", d.Plugin, err)
			}
			if !meta.Resource {
				continue
			}
			dep.Name, dep.Version, dep.Server = meta.Name, meta.Version, meta.Server
			if p := meta.Parameterization; p != nil {
				dep.Parameterization = &pulumirpc.PackageParameterization{
					Name: p.Name, Version: p.Version, Value: p.Value,
				}
			}
			if p := meta.ExtensionParameterization; p != nil {
				dep.Extension = &pulumirpc.PackageParameterization{
					Name: p.Name, Version: p.Version, Value: p.Value,
				}
			}
		}
		if dep.Name == "" {
			dep.Name = strings.TrimPrefix(d.Name, "pulumi-")
		}
		if dep.Version == "" {
			// Pre-release Python versions (4.0.0a1…) do not map back to the plugin's semver: skip those.
			if !plainVersion.MatchString(d.Version) {
				logging.V(5).Infof("GetRequiredPackages: no plugin version for %s %s", d.Name, d.Version)
				continue
			}
			dep.Version = d.Version
		}
		if _, err := semver.ParseTolerant(dep.Version); err != nil {
			logging.V(5).Infof("GetRequiredPackages: skipping %s: bad version %q", d.Name, dep.Version)
			continue
		}
		if !strings.HasPrefix(dep.Version, "v") {
			dep.Version = "v" + dep.Version
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := h.requiredPackages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

//nolint:staticcheck // the engine still calls the deprecated form for older flows
func (h *pythonHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := h.requiredPackages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, d := range deps {
		if d.Parameterization != nil {
			continue
		}
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server, Checksums: d.Checksums,
		})
	}
	return resp, nil
}

// RunPlugin runs a Python plugin directory (a policy pack, or a component provider with a PulumiPlugin.yaml): its
// __main__.py with the engine's arguments, streaming its output back until it exits.
func (h *pythonHost) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return err
	}
	if opts.Toolchain == toolchain.Auto && opts.Virtualenv == "" && toolchain.IsVirtualEnv(
		filepath.Join(opts.Root, "venv")) {
		// `pulumi install` gives a plugin without a virtualenv option one in ./venv (see InstallDependencies);
		// without it the plugin runs with the interpreter a program would use.
		opts.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return fmt.Errorf("%s: %w (create it with `pulumi install` in that directory)", opts.ProgramDir, err)
	}
	args := append([]string{"-u", req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)
	cmd, err := command(ctx, tc, args...)
	if err != nil {
		return err
	}
	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Env, req.GetEnv()...)

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr

	code := 0
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return fmt.Errorf("running plugin %s: %w", opts.ProgramDir, err)
		}
		code = exitErr.ExitCode()
	}
	if err := closer.Close(); err != nil {
		return err
	}
	return server.Send(&pulumirpc.RunPluginResponse{
		Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}, //nolint:gosec // exit codes fit
	})
}

// InstallDependencies creates the project's virtual environment when needed and installs its requirements
// (requirements.txt, or pyproject.toml for poetry / uv), streaming the installer's output.
func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.GetDirectory(), ProgramDirectory: req.GetDirectory()}
	}
	opts, err := pythonOptions(info)
	if err != nil {
		return err
	}
	if req.GetIsPlugin() && opts.Toolchain == toolchain.Auto && opts.Virtualenv == "" {
		opts.Toolchain, opts.Virtualenv = toolchain.Pip, "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	ctx := server.Context()
	if err := tc.InstallDependencies(ctx, opts.ProgramDir, req.GetUseLanguageVersionTools(),
		true /*showOutput*/, stdout, stderr); err != nil {
		return err
	}
	// A plugin that is a buildable Python package (a component provider with pyproject.toml or setup.py) is also
	// installed into its environment; a bare directory (a policy pack, say) only needs its requirements.
	if req.GetIsPlugin() && buildablePackage(opts.ProgramDir) {
		if err := tc.InstallPackage(ctx, opts.ProgramDir, req.GetUseLanguageVersionTools(),
			true /*showOutput*/, stdout, stderr); err != nil {
			return err
		}
	}
	return closer.Close()
}

func buildablePackage(dir string) bool {
	for _, name := range []string{"pyproject.toml", "setup.py"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	_, tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
		Metadata:   map[string]string{"toolchainVersion": about.ToolchainVersion.String()},
	}, nil
}

func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	_, tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pkgs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}

// RuntimeOptionsPrompts asks nothing: `pulumi new` keeps the template's options.
func (h *pythonHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// Template leaves a new project's files as the template wrote them.
func (h *pythonHost) Template(context.Context, *pulumirpc.TemplateRequest) (*pulumirpc.TemplateResponse, error) {
	return &pulumirpc.TemplateResponse{}, nil
}
