"""A Mosquitto broker on a loopback port with persistence in its own folder."""

from __future__ import annotations

import os
from pathlib import Path

from broker.folder import Folder, init
from devstack.process import ChildServer, ServerFailedError, find_binary, port_open, wait_until
from firmware import contract


class MosquittoServer(ChildServer):
    name = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        extra_config: str = "",
        autosave_s: int = 1,
        max_packet_bytes: int | None = contract.MAX_PACKET_BYTES,
    ) -> None:
        """autosave_s: how often the broker saves its queues to disk; a crash loses what came
        since (Mosquitto's own default is 1800). max_packet_bytes: the largest packet it takes,
        a hall's (svc-broker's) by default; None for none, as a broker set up otherwise."""
        super().__init__(data_dir)
        self.extra_config = extra_config
        self.autosave_s = autosave_s
        self.max_packet_bytes = max_packet_bytes
        self.binary = find_binary("mosquitto", "/usr/sbin")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.config(port))
        return [self.binary, "-c", str(conf)]

    def config(self, port: int) -> str:
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"autosave_interval {self.autosave_s}",
            "max_queued_messages 0",
            "max_inflight_messages 10000",  # two batches of the collector's (docs/collector.md)
            "set_tcp_nodelay true",  # an ack follows a PUBACK at once, not after a delayed ACK
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.max_packet_bytes is not None:
            lines.append(f"max_packet_size {self.max_packet_bytes}")
        if os.geteuid() == 0:
            # Mosquitto drops to user "mosquitto" when started as root; that user
            # could not write the temporary persistence folder.
            lines.append("user root")
        return "\n".join(lines) + "\n" + self.extra_config

    def is_ready(self) -> bool:
        return port_open(self.port)


def hall_folder(top: Path) -> Folder:
    """A broker folder as `svc-broker init` writes it, for loopback and the name localhost,
    in `top`, which is opened to Mosquitto's own user: started as root, Mosquitto drops to
    it, as on a hall's server, and a temporary folder is root's alone."""
    os.chmod(top, 0o711)
    return init(top / "broker", "127.0.0.1:8883", "localhost")


class HallBroker(ChildServer):
    """Mosquitto as a hall runs it, from a `svc-broker init` folder (TLS only, accounts, ACL),
    its one listener moved to a free loopback port."""

    name = "mosquitto"

    def __init__(self, folder: Folder) -> None:
        super().__init__(folder.path)
        self.folder = folder
        self.binary = find_binary("mosquitto", "/usr/sbin")

    @property
    def url(self) -> str:
        return self.folder.url

    def command(self, port: int) -> list[str]:
        self.folder.listen = f"127.0.0.1:{port}"
        self.folder.save()
        return [self.binary, "-c", str(self.folder.conf)]

    def is_ready(self) -> bool:
        return port_open(self.port)

    def reload(self, timeout_s: float = 10.0) -> None:
        """Have the broker read its accounts and ACL again, and wait until it has: a client
        that connects after this is judged by the new ones."""
        before = self._reloads()
        if not self.folder.reload():
            raise ServerFailedError("no running Mosquitto on this folder to reload")
        if not wait_until(lambda: self._reloads() > before, timeout_s, lambda: None):
            raise ServerFailedError(f"Mosquitto did not reload: {self.log_tail()}")

    def _reloads(self) -> int:
        return self.log_path.read_text(errors="replace").count("Reloading config.")
