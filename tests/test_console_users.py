"""The console's accounts (console/users.py, db.py, cli.py): argon2id hashes, a login
throttled after five wrong passwords in a row, managers held to their halls, every attempt in
the audit trail, and a schema that upgrades itself and refuses a newer one."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from console import db, sessions, users

SVC_CONSOLE = Path(sys.executable).parent / "svc-console"
GOOD = "correct horse battery"


def command(path: Path, *args: str, password: str = GOOD) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SVC_CONSOLE), "--db", str(path), *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
    )


def add_user(folder: Path, *args: str, password: str = GOOD) -> subprocess.CompletedProcess[str]:
    return command(folder / "console.db", "add-user", *args, password=password)


def test_add_user_stores_an_argon2id_hash_and_never_the_password(tmp_path: Path):
    done = add_user(tmp_path, "wang", "--role", "manager", "--site", "sjz-yuhua")
    assert done.returncode == 0, done.stderr
    assert "user wang (manager) for sjz-yuhua added" in done.stdout
    assert GOOD not in done.stdout + done.stderr
    raw = (tmp_path / "console.db").read_bytes()
    assert GOOD.encode() not in raw
    for path in tmp_path.glob("console.db*"):  # the hashes: the console's user's alone
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conn = db.connect(tmp_path / "console.db")
    hashed = conn.execute("SELECT password FROM user WHERE name = 'wang'").fetchone()[0]
    assert hashed.startswith("$argon2id$")
    entry = conn.execute("SELECT * FROM audit").fetchone()
    assert (entry["actor"], entry["action"], entry["subject"]) == (
        "svc-console",
        "add_user",
        "wang",
    )
    assert json.loads(entry["after"]) == {"role": "manager", "sites": ["sjz-yuhua"]}
    assert users.get(conn, "wang") == users.User("wang", "manager", ("sjz-yuhua",))


@pytest.mark.parametrize(
    ("args", "password", "words"),
    [
        (["li", "--role", "manager"], GOOD, "at least one hall"),
        (["li", "--role", "appraiser", "--site", "sjz-yuhua"], GOOD, "sees every hall"),
        (["li", "--role", "manager", "--site", "Bad Site"], GOOD, "not a hall's site name"),
        (["li", "--role", "admin"], "short", "10 to 256 characters"),
        (["li", "--role", "admin"], "x" * 257, "10 to 256 characters"),
        ([" li", "--role", "admin"], GOOD, "printable characters"),
        (["x" * 33, "--role", "admin"], GOOD, "printable characters"),
        (["?", "--role", "admin"], GOOD, "printable characters"),  # the audit trail's own
        (["li", "--role", "admin"], "", "10 to 256 characters"),  # an empty line
    ],
)
def test_add_user_refuses_what_it_cannot_take_in_one_line(tmp_path, args, password, words):
    done = add_user(tmp_path, *args, password=password)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done
    assert words in done.stderr and "Traceback" not in done.stderr


def test_a_second_account_of_one_name_is_refused(tmp_path: Path):
    assert add_user(tmp_path, "li", "--role", "admin").returncode == 0
    again = add_user(tmp_path, "li", "--role", "appraiser")
    assert again.returncode == 2 and "already" in again.stderr
    assert users.get(db.connect(tmp_path / "console.db"), "li").role == "admin"  # unchanged


def test_five_wrong_passwords_lock_the_account_and_the_sixth_try_is_refused(tmp_path: Path):
    conn = db.connect(tmp_path / "console.db")
    users.add(conn, "wang", "manager", ["sjz-yuhua"], password=GOOD, actor="t")
    now = 1_800_000_000.0
    assert users.log_in(conn, "wang", GOOD, now) is not None
    for n in range(users.MAX_FAILURES):
        assert users.log_in(conn, "wang", f"wrong {n}", now + n) is None
    assert users.log_in(conn, "wang", GOOD, now + 10) is None  # locked: right or not
    assert users.log_in(conn, "wang", GOOD, now + 4 + users.LOCK_S - 1) is None
    assert users.log_in(conn, "wang", GOOD, now + 4 + users.LOCK_S) is not None  # open again
    for n in range(users.MAX_FAILURES - 1):  # the count started again, and a success clears it
        assert users.log_in(conn, "wang", "wrong", now + users.LOCK_S + 10 + n) is None
    assert users.log_in(conn, "wang", GOOD, now + users.LOCK_S + 20) is not None
    entries = conn.execute("SELECT * FROM audit WHERE action = 'log_in' ORDER BY id").fetchall()
    outcomes = [json.loads(row["after"])["outcome"] for row in entries]
    assert {row["actor"] for row in entries if row["after"] != '{"outcome": "ok"}'} == {"?"}
    assert outcomes == ["ok", *["wrong_password"] * 4, "locked_now", "locked", "locked", "ok",
                        *["wrong_password"] * 4, "ok"]  # fmt: skip
    assert users.log_in(conn, "nobody", GOOD, now) is None
    assert users.log_in(conn, "wang", "x" * 100_000, now + users.LOCK_S + 30) is None
    assert users.log_in(conn, "wang", "\udcff bytes not UTF-8", now + users.LOCK_S + 31) is None
    for typed in (GOOD + " typed as a name" * 3, GOOD):  # too long for a name, or not
        assert users.log_in(conn, typed, "x", now) is None
        last = conn.execute("SELECT subject FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        assert last["subject"] == "(no such user)"  # a password in the name field is not kept


def test_a_manager_acts_on_their_halls_only():
    manager = users.User("wang", "manager", ("sjz-yuhua",))
    assert manager.may_act_on("sjz-yuhua") and not manager.may_act_on("sjz-changan")
    assert users.User("zhao", "appraiser", ()).may_act_on("sjz-changan")


def test_a_name_is_one_account_however_its_letters_were_composed(tmp_path: Path):
    conn = db.connect(tmp_path / "console.db")
    users.add(conn, "wa\u0301ng", "admin", [], password=GOOD, actor="t")  # decomposed
    with pytest.raises(users.UserError, match="already"):
        users.add(conn, "w\u00e1ng", "admin", [], password=GOOD, actor="t")  # composed
    assert users.log_in(conn, "wa\u0301ng", GOOD) == users.User("w\u00e1ng", "admin", ())


def test_odd_files_and_input_are_said_in_one_line(tmp_path: Path):
    (tmp_path / "console.db").write_bytes(b"not a database at all" * 100)
    done = add_user(tmp_path, "li", "--role", "admin")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    (tmp_path / "console.db").unlink()
    done = subprocess.run(  # no newline at the end of standard input
        [str(SVC_CONSOLE), "--db", str(tmp_path / "console.db"), "add-user", "li", "--role",
         "admin"], input=GOOD, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert users.log_in(db.connect(tmp_path / "console.db"), "li", GOOD) is not None


def test_two_consoles_opening_a_new_file_at_once_upgrade_it_once(tmp_path: Path):
    path = tmp_path / "console.db"
    failed: list[BaseException] = []

    def open_it() -> None:
        try:
            db.connect(path).close()
        except BaseException as e:
            failed.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == []
    assert db.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)


def test_the_schema_upgrades_itself_once_and_refuses_a_newer_one(tmp_path: Path):
    path = tmp_path / "console.db"
    db.connect(path).close()
    conn = db.connect(path)  # a second open changes nothing
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    conn.execute(f"PRAGMA user_version = {len(db.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(db.SchemaError, match="newer than this console"):
        db.connect(path)
    other = tmp_path / "other.db"
    plain = sqlite3.connect(other)
    plain.execute("CREATE TABLE readings (x)")  # another program's: never written
    plain.commit()
    plain.close()
    before = other.read_bytes()
    with pytest.raises(db.SchemaError, match="another program's"):
        db.connect(other)
    assert other.read_bytes() == before


def test_a_new_password_lifts_a_lock_and_ends_the_sessions_and_a_removed_user_is_gone(
    tmp_path: Path,
):
    path = tmp_path / "console.db"
    assert add_user(tmp_path, "wang", "--role", "manager", "--site", "ha01").returncode == 0
    conn = db.connect(path)
    wang = users.get(conn, "wang")
    assert wang is not None
    secret, _ = sessions.start(conn, wang)
    for _ in range(users.MAX_FAILURES):
        assert users.log_in(conn, "wang", "not the password") is None
    done = command(path, "set-password", "wang", password="a brand new password")
    assert done.returncode == 0 and "lock lifted" in done.stdout
    assert sessions.find(conn, secret, 3600) is None  # logged in elsewhere: logged out
    assert users.log_in(conn, "wang", "a brand new password") is not None
    secret, _ = sessions.start(conn, wang)
    done = command(path, "remove-user", "wang")
    assert done.returncode == 0
    assert users.get(conn, "wang") is None and sessions.find(conn, secret, 3600) is None
    actions = [r["action"] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions[-2:] == ["log_in", "remove_user"] and "set_password" in actions
    assert command(path, "remove-user", "wang").returncode == 2
