"""Environment variables a request may never set for its workflow, in one table.

A request's ``data_connections_env_vars`` become variables of the workflow's process. Whatever
makes a shell, an interpreter, the dynamic loader or a library run other code, trust other
certificates, send traffic elsewhere or read other files is wtrunner's or the operator's to
set, never a request's. Names are compared case-insensitively: several tools read lower-case
variants (``http_proxy``), and a name differing only in case is never a data connection.

An entry is a name, a prefix (``LD_*``) or a suffix (``*_PROXY``). Each says why it is here;
the refusal quotes it. Beside this table, a request may not set the results variable, a
variable the server passes on to workflows (``WTRUNNER_CHILD_ENV_PASSTHROUGH`` names it and the
server has it: its value is the operator's), nor one the workflow's activation environment
sets (checked once the environment is known).
"""

from __future__ import annotations

from collections.abc import Iterable

RESERVED_ENV: tuple[tuple[str, str], ...] = (
    # -- what wtrunner sets for each run
    ("TRACEPARENT", "the run's trace context"),
    ("TRACESTATE", "the run's trace context"),
    ("WTRUNNER_*", "wtrunner's settings and the run's process marker"),
    ("WT_INVOKERS__RESULTS_ENV_VAR", "names the results variable"),
    ("LITHOPS_*", "the run's Lithops configuration"),
    ("ECOSCOPE_WORKFLOWS_OTEL_*", "the run's tracing configuration"),
    ("OTEL_*", "OpenTelemetry configuration: where the run's traces go"),
    # -- the process itself: which programs run, where its files go
    ("PATH", "which programs run"),
    ("HOME", "where tools read their configuration"),
    ("XDG_*", "where tools read their configuration"),
    ("TMPDIR", "the run's temporary directory"),
    ("TMP", "a temporary directory"),
    ("TEMP", "a temporary directory"),
    ("TEMPDIR", "a temporary directory"),
    # -- shells: code run at start-up, how commands are parsed
    ("SHELL", "which shell tools start"),
    ("BASH_ENV", "a file bash runs at start-up"),
    ("ENV", "a file sh runs at start-up"),
    ("BASH_FUNC_*", "bash functions imported at start-up"),
    ("BASH_XTRACEFD", "where bash writes its trace"),
    ("SHELLOPTS", "bash options"),
    ("BASHOPTS", "bash options"),
    ("IFS", "how the shell splits words"),
    ("PS4", "expanded, and so run, by a tracing shell"),
    ("PROMPT_COMMAND", "run by bash before a prompt"),
    ("CDPATH", "where cd looks"),
    ("GLOBIGNORE", "how the shell expands patterns"),
    ("ZDOTDIR", "where zsh reads its start-up files"),
    ("EDITOR", "a program other tools start"),
    ("VISUAL", "a program other tools start"),
    ("PAGER", "a program other tools start"),
    ("BROWSER", "a program other tools start"),
    ("SSH_ASKPASS", "a program ssh starts"),
    ("SUDO_ASKPASS", "a program sudo starts"),
    # -- the dynamic loader and the C library (glibc ignores these for setuid programs)
    ("LD_*", "the dynamic loader: libraries loaded into every program"),
    ("DYLD_*", "the macOS dynamic loader"),
    ("GLIBC_TUNABLES", "C library tunables"),
    ("MALLOC_*", "C library allocator settings"),
    ("GCONV_PATH", "character set modules the C library loads"),
    ("GETCONF_DIR", "C library configuration"),
    ("LOCPATH", "locale files the C library loads"),
    ("NLSPATH", "message catalogues the C library loads"),
    ("HOSTALIASES", "host name resolution"),
    ("LOCALDOMAIN", "host name resolution"),
    ("RES_OPTIONS", "host name resolution"),
    ("RESOLV_HOST_CONF", "host name resolution"),
    ("NIS_PATH", "host and user look-ups"),
    ("TZ", "the time zone (may name a file to read)"),
    ("TZDIR", "time zone files the C library loads"),
    ("LANG", "the locale: how text and numbers are read"),
    ("LANGUAGE", "the locale: how text and numbers are read"),
    ("LC_*", "the locale: how text and numbers are read"),
    # -- interpreters: code or modules loaded at start-up
    ("PYTHON*", "Python start-up: module path, start-up file, hooks"),
    ("PERL*", "Perl start-up: options and module path (PERL5OPT, PERL5LIB, PERLLIB)"),
    ("NODE_*", "Node.js start-up and TLS (NODE_OPTIONS, NODE_PATH, NODE_EXTRA_CA_CERTS)"),
    ("NPM_CONFIG_*", "npm configuration"),
    ("RUBY*", "Ruby start-up: options and module path (RUBYOPT, RUBYLIB)"),
    ("GEM_*", "where Ruby loads gems"),
    ("BUNDLE_*", "Ruby Bundler configuration"),
    ("R_*", "R start-up: profiles, environ files, library path"),
    ("JAVA_*", "Java options (JAVA_TOOL_OPTIONS loads agents)"),
    ("_JAVA_*", "Java options"),
    ("JDK_*", "Java options"),
    ("CLASSPATH", "where Java loads classes"),
    ("LUA_*", "Lua start-up (LUA_INIT runs code)"),
    ("TCLLIBPATH", "where Tcl loads packages"),
    ("TCL_LIBRARY", "where Tcl loads its library"),
    ("TK_LIBRARY", "where Tk loads its library"),
    ("JULIA_*", "Julia start-up and load path"),
    ("MPLBACKEND", "the module matplotlib loads to draw"),
    ("MPLCONFIGDIR", "where matplotlib reads its configuration"),
    ("GIT_*", "git configuration and the programs git runs"),
    # -- package managers and environments
    ("CONDA_*", "the conda environment"),
    ("_CE_*", "conda's shell integration"),
    ("MAMBA_*", "the mamba environment"),
    ("PIXI_*", "the pixi environment"),
    ("VIRTUAL_ENV", "the Python environment"),
    ("PIP_*", "where pip installs from"),
    ("UV_*", "where uv installs from"),
    # -- geospatial libraries (their activation sets some; GDAL_DRIVER_PATH loads plugins)
    ("GDAL_*", "GDAL configuration and plugins"),
    ("CPL_*", "GDAL configuration"),
    ("PROJ_*", "PROJ data and network configuration"),
    # -- TLS and the network: trusted certificates, where traffic goes
    ("OPENSSL_*", "OpenSSL configuration and the modules it loads"),
    ("SSL_CERT_*", "trusted certificates"),
    ("REQUESTS_CA_BUNDLE", "trusted certificates"),
    ("CURL_CA_BUNDLE", "trusted certificates"),
    ("AWS_CA_BUNDLE", "trusted certificates"),
    ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "trusted certificates"),
    ("SSLKEYLOGFILE", "where TLS session keys are written"),
    ("*_PROXY", "where network traffic goes"),
    ("KRB5_CONFIG", "Kerberos configuration"),
    ("KRB5CCNAME", "Kerberos credentials"),
    # -- the server's cloud identity and endpoints
    ("GOOGLE_APPLICATION_CREDENTIALS", "the server's credentials file"),
    ("CLOUDSDK_*", "Google Cloud SDK configuration"),
    ("*_EMULATOR_HOST", "where Google client libraries connect, without credentials"),
    ("GCE_METADATA_HOST", "where Google client libraries get their tokens"),
    ("GCE_METADATA_IP", "where Google client libraries get their tokens"),
    ("AWS_CONFIG_FILE", "a configuration file on the server"),
    ("AWS_SHARED_CREDENTIALS_FILE", "a credentials file on the server"),
)


def _compile(
    entries: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    exact: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    suffixes: list[tuple[str, str]] = []
    for pattern, why in entries:
        upper = pattern.upper()
        if upper.endswith("*"):
            prefixes.append((upper[:-1], why))
        elif upper.startswith("*"):
            suffixes.append((upper[1:], why))
        else:
            exact[upper] = why
    return exact, tuple(prefixes), tuple(suffixes)


_EXACT, _PREFIXES, _SUFFIXES = _compile(RESERVED_ENV)


def reserved_because(name: str) -> str | None:
    """Why a request may not set variable ``name`` (from the table), or None if it may."""
    upper = name.upper()
    why = _EXACT.get(upper)
    if why is not None:
        return why
    for prefix, why in _PREFIXES:
        if upper.startswith(prefix):
            return why
    for suffix, why in _SUFFIXES:
        if upper.endswith(suffix):
            return why
    return None
