"""`make run`: the embedded store (unless MONGO_URI is set), moderation and auth; Ctrl-C stops all.

Development only. Secrets that are missing are generated into the git-ignored
`data/secrets.env` so both services (and the CLI) read the same values.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Where data/ and the .env files live: the checkout, unless AUTHGATE_ROOT names another folder.
ROOT = Path(os.environ.get("AUTHGATE_ROOT") or REPO).resolve()

from services.auth.settings import EMBEDDED_MONGO_PASSWORD, EMBEDDED_MONGO_USER  # noqa: E402
from shared.config import GENERATED_SECRETS_FILE, Env, generate_dev_secret  # noqa: E402
from shared.moderation.policy import AUTH_KEY_SCOPES  # noqa: E402

DATA = ROOT / "data"
PORT_FILE = DATA / "mongo.port"
# sha256 of the password the store's user was last given: provisioning runs only when it changes.
STORE_AUTH_FILE = DATA / "mongo.auth"
# What the auth service needs in its one database, nothing on any other.
STORE_ROLES = [{"role": "readWrite", "db": "authgate"}, {"role": "dbAdmin", "db": "authgate"}]


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def make_private(path: Path) -> None:
    """data/ holds password hashes and secrets: 0700 folders, 0600 files, whatever made them."""
    path.mkdir(mode=0o700, exist_ok=True)
    for folder, dirs, files in os.walk(path):
        os.chmod(folder, 0o700)
        for name in dirs:
            os.chmod(Path(folder) / name, 0o700)
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                os.chmod(file, 0o600)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"[make run] process exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"[make run] nothing listening on port {port} after {timeout}s")


def ensure_secrets() -> list[str]:
    env = Env.load(ROOT)
    created: list[str] = []

    def make(name: str, factory: object) -> str:
        existing = env.secret(name)
        if existing:
            return existing
        created.append(name)
        return generate_dev_secret(ROOT, name, factory)  # type: ignore[arg-type]

    make("JWT_SECRET", lambda: secrets.token_hex(32))
    make("JWT_REFRESH_SECRET", lambda: secrets.token_hex(32))
    make("TOTP_ENCRYPTION_KEY", lambda: secrets.token_hex(32))
    auth_key = make("MODERATION_API_KEY", lambda: secrets.token_urlsafe(32))
    admin_key = make("MODERATION_ADMIN_KEY", lambda: secrets.token_urlsafe(32))
    # auth's key holds exactly the scopes auth uses: its own event types, never report-user
    make("MODERATION_API_KEYS", lambda: f"auth:{AUTH_KEY_SCOPES}:{auth_key},cli:admin:{admin_key}")
    # Not a secret, but the CLI in another shell needs it to find the moderation service.
    port = env.integer("MODERATION_PORT", 3081)
    make("MODERATION_URL", lambda: f"http://127.0.0.1:{port}")
    return created


Children = list[tuple[str, "subprocess.Popen[bytes]"]]
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _unblock_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def spawn(
    children: Children,
    name: str,
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child and record it as one step.

    A Ctrl-C between the two would leave a child nobody stops, holding the store's files, so the
    stop signals wait until it is recorded; the child itself starts with them unblocked.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, preexec_fn=_unblock_stop_signals)
        children.append((name, proc))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return proc


def start_store(
    children: Children, name: str, exe: str, port: int, store_dir: Path, *, auth: bool
) -> subprocess.Popen[bytes]:
    command = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(store_dir)]
    return spawn(children, name, [*command, "--log-level", "WARNING", *(["--auth"] if auth else [])])


def provision_store(exe: str, port: int, store_dir: Path, password: str, children: Children) -> None:
    """Give the store its one user; secantusd creates users only while running without --auth.

    That short run listens on loopback only, and happens again only when the password changes.
    """
    digest = hashlib.sha256(password.encode()).hexdigest()
    if STORE_AUTH_FILE.is_file() and STORE_AUTH_FILE.read_text().strip() == digest:
        return
    import pymongo  # the services' driver; imported here so `make run` with MONGO_URI never needs it

    say("giving the embedded store its password (one short start without authentication)")
    proc = start_store(children, "embedded store (provisioning)", exe, port, store_dir, auth=False)
    try:
        wait_port(port, proc)
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            f"mongodb://127.0.0.1:{port}/?retryWrites=false", serverSelectionTimeoutMS=30_000
        )
        with client:
            admin = client["admin"]
            exists = admin.command("usersInfo", EMBEDDED_MONGO_USER)["users"]
            command = "updateUser" if exists else "createUser"
            admin.command(command, EMBEDDED_MONGO_USER, pwd=password, roles=STORE_ROLES)
    finally:
        proc.terminate()
        proc.wait(timeout=30)  # the real start reopens the same files
        children.remove(("embedded store (provisioning)", proc))
    STORE_AUTH_FILE.write_text(digest)


def service_url(prefix: str) -> str:
    """The address a service really listens on, from the same variables it reads."""
    env = Env.load(ROOT)
    host = env.string(f"{prefix}_HOST", "127.0.0.1") or "127.0.0.1"
    port = env.integer(f"{prefix}_PORT", 3080 if prefix == "AUTH" else 3081)
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"


def main() -> None:
    os.umask(0o077)  # every file the store and the services create is private to this user
    make_private(DATA)
    env = Env.load(ROOT)
    children: Children = []
    child_env = dict(os.environ, AUTHGATE_ENV="development", PYTHONUNBUFFERED="1")

    stopped = False

    def stop_all(*_: object) -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the waiting short
        PORT_FILE.unlink(missing_ok=True)
        for name, proc in reversed(children):
            if proc.poll() is None:
                say(f"stopping {name}")
                proc.terminate()
        for _name, proc in reversed(children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()  # return only once every child is gone: a restart must find its files free

    def on_term(*_: object) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        if env.secret("MONGO_URI") is None:
            exe = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"
            # Not the well-known 27017: an ephemeral port unless EMBEDDED_MONGO_PORT asks for one.
            port = free_port(env.integer("EMBEDDED_MONGO_PORT", 0, minimum=0))
            store_dir = DATA / "mongo"
            say(f"MONGO_URI is unset: starting the embedded MongoDB stand-in on 127.0.0.1:{port}")
            say("its data lives in ./data/mongo (git-ignored); set MONGO_URI to use a real MongoDB")
            password = env.secret(EMBEDDED_MONGO_PASSWORD) or generate_dev_secret(
                ROOT, EMBEDDED_MONGO_PASSWORD, lambda: secrets.token_urlsafe(32)
            )
            provision_store(exe, port, store_dir, password, children)
            proc = start_store(children, "embedded store", exe, port, store_dir, auth=True)
            wait_port(port, proc)
            PORT_FILE.write_text(str(port))
        else:
            say("MONGO_URI is set: using it, no store started")
        created = ensure_secrets()
        if created:
            bar = "!" * 78
            say(bar)
            say(f"GENERATED development secrets {', '.join(created)} into ./{GENERATED_SECRETS_FILE}")
            say("Never use them in production: set real secrets (or *_FILE) there.")
            say(bar)
        mod_port = Env.load(ROOT).integer("MODERATION_PORT", 3081)
        child_env.setdefault("MODERATION_URL", f"http://127.0.0.1:{mod_port}")
        for name, module, port_var, default in (
            ("moderation", "services.moderation", "MODERATION_PORT", 3081),
            ("auth", "services.auth", "AUTH_PORT", 3080),
        ):
            proc = spawn(children, name, [sys.executable, "-m", module], cwd=ROOT, env=child_env)
            wait_port(Env.load(ROOT).integer(port_var, default), proc)
            say(f"{name} service is up")
        say(f"auth API on {service_url('AUTH')}, moderation on {service_url('MODERATION')}")
        say("Ctrl-C stops everything")
        while all(proc.poll() is None for _, proc in children):
            time.sleep(0.5)
        for name, proc in children:
            if proc.poll() is not None:
                say(f"{name} exited with code {proc.returncode}; stopping the rest")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


if __name__ == "__main__":
    main()
