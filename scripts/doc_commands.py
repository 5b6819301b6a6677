#!/usr/bin/env python3
"""The runnable-commands and links check of README.md and docs/.

scripts/doc-commands.sh is the entry point and documents the convention
(```sh runnable, timeout=N, timeout-ok); this file does the work:

* finds the fenced blocks whose info string is `sh runnable [options]`
  and runs each one with bash from the repository root, in its own process
  group, with a time limit; whatever a block left running is stopped when
  it ends;
* checks that every relative link (and image, and reference definition)
  resolves to a file or directory, and that a `#anchor` names a heading
  (GitHub's slugs) or an explicit `id`/`name` in the target Markdown file.

Every problem is reported as `path:line: what`, the line being the block's
opening fence or the link's line, and the exit code is 1 if there was any.
`--self-test` checks the checker on a temporary set of files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT = int(os.environ.get("DOC_COMMANDS_TIMEOUT", "300"))
# After SIGTERM (a block's time is up, or it ended and left processes
# behind), how long the process group gets to exit before SIGKILL.
GRACE = 10.0
SHELLS = {"sh", "bash", "shell"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    timeout: int = DEFAULT_TIMEOUT
    timeout_ok: bool = False


@dataclass
class Doc:
    path: Path
    lines: list[str]
    blocks: list[Block] = field(default_factory=list)
    # 1-based line numbers that are inside a fence (fence lines included).
    fenced: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def parse(path: Path, root: Path) -> Doc:
    doc = Doc(path, path.read_text(encoding="utf-8").splitlines())
    i = 0
    n = len(doc.lines)
    while i < n:
        m = FENCE_OPEN.match(doc.lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        fence, info = m.group(2), m.group(3).strip()
        start = i
        body: list[str] = []
        i += 1
        closed = False
        while i < n:
            line = doc.lines[i]
            stripped = line.strip()
            if (
                len(line) - len(line.lstrip(" ")) <= 3
                and stripped.startswith(fence[0] * len(fence))
                and set(stripped) == {fence[0]}
            ):
                closed = True
                break
            body.append(line)
            i += 1
        doc.fenced.update(range(start + 1, i + 2))
        where = f"{rel(path, root)}:{start + 1}"
        if not closed:
            doc.problems.append(f"{where}: code fence `{fence}` is never closed")
        words = info.split()
        if len(words) >= 2 and words[0] in SHELLS and words[1] == "runnable":
            block = Block(path, start + 1, info, "\n".join(body) + "\n")
            for opt in words[2:]:
                if re.fullmatch(r"timeout=\d+s?", opt):
                    block.timeout = int(opt[len("timeout="):].rstrip("s"))
                elif opt == "timeout-ok":
                    block.timeout_ok = True
                else:
                    doc.problems.append(
                        f"{where}: unknown option {opt!r} of a runnable block "
                        "(known: timeout=SECONDS, timeout-ok)"
                    )
                    block = None
                    break
            if block is not None:
                if block.timeout_ok and not any(w.startswith("timeout=") for w in words):
                    doc.problems.append(f"{where}: timeout-ok needs a timeout=SECONDS")
                elif block.timeout <= 0:
                    doc.problems.append(f"{where}: timeout must be at least 1 second")
                else:
                    doc.blocks.append(block)
        elif words and words[0] == "runnable":
            doc.problems.append(f"{where}: `runnable` needs a shell language first (```sh runnable)")
        i += 1
    return doc


# --- links -----------------------------------------------------------------

INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_REF = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
HTML_ID = re.compile(r"""<[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def slug(text: str) -> str:
    """GitHub's heading anchor: rendered text, lower case, punctuation
    except `-` and `_` dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(^|\s)_+|_+(\s|$)", r"\1\2", text)  # _emphasis_
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


def anchors(doc: Doc) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for idx, line in enumerate(doc.lines):
        if idx + 1 in doc.fenced:
            continue
        heading = None
        m = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            heading = m.group(2)
        elif (
            idx + 1 < len(doc.lines)
            and idx + 2 not in doc.fenced
            and line.strip()
            and re.match(r"^ {0,3}(=+|-+)\s*$", doc.lines[idx + 1])
            and not re.match(r"^ {0,3}([-*+]|\d+[.)])\s", line)
        ):
            heading = line.strip()
        if heading is not None:
            s = slug(heading)
            k = seen.get(s, 0)
            seen[s] = k + 1
            out.add(s if k == 0 else f"{s}-{k}")
        for m in HTML_ID.finditer(line):
            out.add(m.group(1))
    return out


def links(doc: Doc) -> list[tuple[int, str]]:
    found = []
    for idx, line in enumerate(doc.lines):
        if idx + 1 in doc.fenced:
            continue
        text = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        for m in INLINE_LINK.finditer(text):
            found.append((idx + 1, m.group(1)))
        m = REF_DEF.match(text)
        if m:
            found.append((idx + 1, m.group(1)))
        for m in HTML_REF.finditer(text):
            found.append((idx + 1, m.group(1)))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def check_links(doc: Doc, root: Path, cache: dict[Path, Doc]) -> list[str]:
    problems = []
    for line, target in links(doc):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        where = f"{rel(doc.path, root)}:{line}"
        path_part, _, anchor = target.partition("#")
        path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
        if not path_part:
            dest = doc.path
        elif path_part.startswith("/"):
            dest = root / path_part.lstrip("/")
        else:
            dest = doc.path.parent / path_part
        if not dest.exists():
            problems.append(f"{where}: broken link {target!r}: {rel(dest, root)} does not exist")
            continue
        if anchor and dest.is_file() and dest.suffix.lower() in (".md", ".markdown"):
            key = dest.resolve()
            if key not in cache:
                cache[key] = parse(dest, root)
            if urllib.parse.unquote(anchor).lower() not in {a.lower() for a in anchors(cache[key])}:
                problems.append(
                    f"{where}: broken link {target!r}: no heading or id "
                    f"#{anchor} in {rel(dest, root)}"
                )
    return problems


# --- running ---------------------------------------------------------------


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the block's process group (what Ctrl-C or a supervisor
    sends), then SIGKILL after GRACE seconds for whatever is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        proc.poll()  # reap the block's shell, or the group never looks empty
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_block(block: Block, root: Path, env: dict[str, str]) -> str | None:
    where = f"{rel(block.path, root)}:{block.line}"
    with tempfile.TemporaryDirectory(prefix="doc-commands-") as tmp:
        script = Path(tmp) / "block.sh"
        script.write_text(block.code)
        log_path = Path(tmp) / "output.log"
        started = time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", str(script)],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = False
            try:
                code = proc.wait(timeout=block.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_group(proc)
                code = proc.wait()
            else:
                stop_group(proc)  # what the block left in the background
        elapsed = time.monotonic() - started
        output = log_path.read_text(errors="replace")
    if timed_out and block.timeout_ok:
        print(f"ok   {where} (still running after {block.timeout}s, stopped: timeout-ok)")
        return None
    if not timed_out and code == 0:
        print(f"ok   {where} ({elapsed:.1f}s)")
        return None
    if timed_out:
        why = (
            f"runnable block timed out after {block.timeout}s (mark it `timeout-ok` "
            "if it runs until stopped, or give it a larger timeout=SECONDS)"
        )
    else:
        why = f"runnable block failed with exit code {code} after {elapsed:.1f}s"
    tail = "\n".join(output.rstrip("\n").splitlines()[-40:])
    code_shown = "\n".join("    " + l for l in block.code.rstrip("\n").splitlines())
    print(f"FAIL {where}")
    return f"{where}: {why}\n  block:\n{code_shown}\n  last output:\n" + "\n".join(
        "    " + l for l in tail.splitlines()
    )


def default_files(root: Path) -> list[Path]:
    files = [root / "README.md"] if (root / "README.md").exists() else []
    docs = root / "docs"
    if docs.is_dir():
        files += sorted(p for p in docs.rglob("*.md") if p.is_file())
    return files


def check(root: Path, files: list[Path], run: bool, list_only: bool) -> int:
    root = root.resolve()
    cache: dict[Path, Doc] = {}
    problems: list[str] = []
    docs = []
    for f in files:
        doc = parse(f, root)
        cache[f.resolve()] = doc
        docs.append(doc)
    n_links = 0
    for doc in docs:
        problems += doc.problems
        problems += check_links(doc, root, cache)
        n_links += sum(
            1 for _, t in links(doc) if t and not SCHEME.match(t) and not t.startswith("//")
        )
    blocks = [b for d in docs for b in d.blocks]
    print(
        f"doc-commands: {len(files)} file(s), {n_links} relative link(s), "
        f"{len(blocks)} runnable block(s)"
    )
    if list_only:
        for b in blocks:
            opts = f" timeout={b.timeout}s" + (" timeout-ok" if b.timeout_ok else "")
            print(f"{rel(b.path, root)}:{b.line}:{opts}")
            print("".join("    " + l + "\n" for l in b.code.rstrip("\n").splitlines()), end="")
    elif run:
        env = dict(os.environ)
        target = Path(os.environ.get("CARGO_TARGET_DIR") or root / "target")
        bin_dir = os.environ.get("DOC_COMMANDS_BIN_DIR") or str(
            (target if target.is_absolute() else root / target) / "debug"
        )
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        for b in blocks:
            p = run_block(b, root, env)
            if p:
                problems.append(p)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"doc-commands: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


# --- self-test -------------------------------------------------------------


def self_test() -> int:
    """Runs the checker on small Markdown files and checks what it says."""
    tmp = Path(tempfile.mkdtemp(prefix="doc-commands-selftest-"))
    failures = []
    fence = "```"
    files = {
        "ok.md": f"""# Running it

See [the failing page](fail.md), [a section](#running-it),
[one in another file](other/page.md#the-big-idea-v2), ![a picture](img.svg),
[a directory](other/) and [the web](https://example.com/nope.md).
`[not a link](nope.md)` is inline code.

{fence}sh
false  # not runnable: never run
{fence}

{fence}sh runnable
echo hello
test "$(pwd)" = "{tmp}"
{fence}

{fence}sh runnable timeout=1 timeout-ok
sleep 30 &
echo $! > {tmp}/daemon.pid
wait
{fence}

{fence}text
[a link in a code block](nope.md) is not checked
{fence}
""",
        "fail.md": f"""# Fails

{fence}sh runnable
true
{fence}

{fence}sh runnable
echo about to fail
false
echo never
{fence}
""",
        "slow.md": f"""# Too slow

{fence}sh runnable timeout=1
sleep 30
{fence}
""",
        "early.md": f"""# A long-running block that ends early with an error

{fence}sh runnable timeout=30 timeout-ok
exit 3
{fence}
""",
        "typo.md": f"""# Typo

{fence}sh runnable tiemout=3
true
{fence}
""",
        "badlink.md": """# Links

Fine: [ok](ok.md).
Broken: [gone](gone.md).
""",
        "badanchor.md": """# Anchors

[no such section](ok.md#walking-it)
""",
        "other/page.md": """Page
====

## The *big* idea: `v2`!

<a id="custom"></a>
""",
        "img.svg": "<svg/>",
    }
    for name, text in files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def expect(name: str, code: int, *says: str) -> None:
        r = subprocess.run(
            [sys.executable, __file__, "--root", str(tmp), str(tmp / name)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = r.stdout + r.stderr
        if r.returncode != code:
            failures.append(f"{name}: exit {r.returncode}, expected {code}:\n{out}")
            return
        for s in says:
            if s not in out:
                failures.append(f"{name}: output lacks {s!r}:\n{out}")

    # TC0: links, anchors (here and in another file), a non-runnable block,
    # a passing block run from the root, a timeout-ok block.
    expect("ok.md", 0, "2 runnable block(s)", "ok   ok.md:12", "ok   ok.md:17")
    pid = int((tmp / "daemon.pid").read_text())
    try:
        os.kill(pid, 0)
        failures.append("ok.md: the block's background process was left running")
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # TC1: a failing block fails the check with its file and fence line.
    expect("fail.md", 1, "fail.md:7: runnable block failed with exit code 1", "about to fail")
    # TC2: running past timeout= without timeout-ok is a failure.
    expect("slow.md", 1, "slow.md:3: runnable block timed out after 1s")
    # TC3: timeout-ok does not excuse an early non-zero exit.
    expect("early.md", 1, "early.md:3: runnable block failed with exit code 3")
    # TC4: an unknown option is an error, not silently ignored.
    expect("typo.md", 1, "typo.md:3: unknown option 'tiemout=3'")
    # TC5: a link to a missing file.
    expect("badlink.md", 1, "badlink.md:4: broken link 'gone.md'")
    # TC6: an anchor no heading has.
    expect("badanchor.md", 1, "badanchor.md:3: broken link 'ok.md#walking-it'")
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("doc-commands self-test FAILED:", file=sys.stderr)
        for f in failures:
            print("  " + f.replace("\n", "\n    "), file=sys.stderr)
        return 1
    print("doc-commands self-test: 7 cases ok")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/**/*.md)")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--links-only", action="store_true", help="check links, run nothing")
    ap.add_argument("--list", action="store_true", help="print the runnable blocks, run nothing")
    ap.add_argument("--self-test", action="store_true", help="check the checker")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    files = [f if f.is_absolute() else Path.cwd() / f for f in a.files] or default_files(a.root)
    return check(a.root, files, run=not a.links_only, list_only=a.list)


if __name__ == "__main__":
    sys.exit(main())
