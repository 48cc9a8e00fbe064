"""Workers as local subprocesses: `ferryman up` and development, where the GPU is this machine's.

The command line is a template, so tests (and unusual setups) can run something else. Placeholders
{python} {url} {token} {region} {backend} {models} {slots} {worker_id} are replaced inside each argument; nothing goes
through a shell. Note that a token on a command line is visible to other local users in `ps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ferryman.types import Region

from .base import Instance, InstanceState, Offer, OfferQuery, ProviderError, WorkerLaunch

DEFAULT_WORKER_COMMAND = (
    "{python}", "-m", "ferryman", "worker",
    "--url", "{url}", "--token", "{token}", "--region", "{region}",
    "--backend", "{backend}", "--models", "{models}", "--slots", "{slots}", "--worker-id", "{worker_id}",
)  # fmt: skip


class LocalProvider:
    """Spawns one worker process per provisioned instance; destroy terminates it (then kills it)."""

    name = "local"

    def __init__(
        self,
        *,
        command: Sequence[str] = DEFAULT_WORKER_COMMAND,
        region: Region = Region.US,
        gpu_name: str = "local",
        log_dir: Path | None = None,
        stop_timeout_s: float = 10.0,
    ) -> None:
        """`log_dir` receives one `<instance>.log` per worker (stdout and stderr); None discards."""
        if not command:
            raise ValueError("command must name a program to run")
        self.command = tuple(command)
        self.region, self.gpu_name = region, gpu_name
        self.log_dir, self.stop_timeout_s = log_dir, stop_timeout_s
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._launched = 0

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """This machine, free, if it is in the queried region."""
        if query.region is not self.region:
            return ()
        return (Offer("local", self.name, self.gpu_name, query.num_gpus, 0.0, self.region, "localhost", 1.0),)

    async def provision(self, offer: Offer, launch: WorkerLaunch) -> Instance:
        """Start a worker process. Raises ProviderError if the region differs or it cannot start."""
        if launch.region is not self.region:
            raise ProviderError(
                f"local workers serve region {self.region.value!r}, not {launch.region.value!r}"
            )
        self._launched += 1
        instance_id = f"local-{self._launched}"
        argv = [_fill(part, launch) for part in self.command]
        log = self._open_log(instance_id)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        except OSError as exc:
            raise ProviderError(f"cannot start worker {argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            if not isinstance(log, int):
                log.close()  # the child holds its own descriptor
        self._processes[instance_id] = process
        return self._instance(instance_id, process)

    async def list(self) -> Sequence[Instance]:
        return tuple(self._instance(i, p) for i, p in self._processes.items())

    async def destroy(self, instance_id: str) -> None:
        """SIGTERM, wait up to `stop_timeout_s`, then SIGKILL. Idempotent."""
        process = self._processes.pop(instance_id, None)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def aclose(self) -> None:
        """Destroy every worker this provider started."""
        for instance_id in tuple(self._processes):
            await self.destroy(instance_id)

    def _open_log(self, instance_id: str) -> IO[bytes] | int:
        if self.log_dir is None:
            return asyncio.subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"{instance_id}.log").open("ab")

    def _instance(self, instance_id: str, process: asyncio.subprocess.Process) -> Instance:
        state = InstanceState.RUNNING if process.returncode is None else InstanceState.EXITED
        return Instance(
            instance_id, self.name, self.region, state, "localhost", 0.0, label=f"pid {process.pid}"
        )


def _fill(part: str, launch: WorkerLaunch) -> str:
    values = {
        "{python}": sys.executable,
        "{url}": launch.url,
        "{token}": launch.token,
        "{region}": launch.region.value,
        "{backend}": launch.backend,
        "{models}": ",".join(launch.models),
        "{slots}": str(launch.slots),
        "{worker_id}": launch.worker_id,
    }
    for placeholder, value in values.items():
        part = part.replace(placeholder, value)
    return part
