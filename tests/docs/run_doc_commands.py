#!/usr/bin/env python3
"""Runs every command that the documentation shows for an ewnet program, as written.

The commands are extracted from the code blocks (fenced or indented) of README.md, docs/*.md and
examples/*/README.md: every line (backslash continuations joined, a trailing '# comment' dropped,
'&&' chains split) that starts with ewnet-<program> or build/examples/<program>/<program>. Each
runs in document order, in a scratch folder laid out like the repository root (docs/ and build/
are links, ../shared is a link to the shared data sets), so relative paths resolve as a reader
would run them. To keep the run short, size-limiting options are APPENDED to the training
programs' documented command lines (a later option overrides an earlier one in every ewnet
program): ewnet-train --epochs 1 --image-size 32, ewnet-finetune --epochs 1, ewnet-transfer
--source-epochs 1 --target-epochs 1 --image-size 32, and --no-progress. Everything else in the
documented line (the data folders, the output folders, the other options) is used as written.

ewnet-finetune --init also gets --image-size 32. tools/torch_to_safetensors.py runs as written
except that --pretrained (which downloads torchvision's weights) becomes --random (nothing
downloaded; the file has the same names and shapes), with Debian's python3 and torch.

Not run, and listed as such: commands that are not ewnet programs (tools/install-deps.sh, cmake,
tools/test.sh, python3 bench/...: CI itself runs those), and `ewnet-collect fetch`, which needs the
network; the steps after it (sheet, reject, training on data/) run on a data/ folder filled with
the generated images of the first ewnet-transfer run instead, as do the photos/, my-photos/ and
line-photos/ (unlabelled) folders a reader would bring.

Exit status: 0 all ran and succeeded, 1 a command failed or a documented program is unknown,
77 (skipped) some commands need ../shared/datasets, which is absent (the rest ran), unless CI is set.
"""
import hashlib
import os
import re
import struct
import shlex
import shutil
import subprocess
import sys
import time

PROGRAMS = ["ewnet-train", "ewnet-finetune", "ewnet-transfer", "ewnet-classify", "ewnet-collect", "ewnet-export",
            "ewnet-calibrate"]
# Documents whose commands another test runs as a walk-through, in order, with its own data
# (docs/deployment.md: the CTest test deploy:walkthrough).
WALKED_ELSEWHERE = {os.path.join("docs", "deployment.md"): "deploy:walkthrough"}
SHORT = {
    "ewnet-train": ["--epochs", "1", "--image-size", "32", "--no-progress"],
    "ewnet-finetune": ["--epochs", "1", "--no-progress"],
    "ewnet-transfer": ["--source-epochs", "1", "--target-epochs", "1", "--image-size", "32", "--no-progress"],
}


def doc_files(root):
    files = [os.path.join(root, "README.md")]
    files += sorted(os.path.join(root, "docs", f) for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))
    ex = os.path.join(root, "examples")
    files += sorted(os.path.join(ex, d, "README.md") for d in os.listdir(ex)
                    if os.path.isfile(os.path.join(ex, d, "README.md")))
    return files


def code_lines(text):
    """Lines inside fenced blocks (any language but cpp/cmake/json) and 4-space indented blocks."""
    out, fence, lang, prev_blank = [], False, "", True
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```"):
            fence, lang = (not fence), s[3:].strip()
            continue
        if fence:
            if lang in ("", "sh", "bash", "shell", "console"):
                out.append(line)
        elif line.startswith("    ") and (prev_blank or (out and out[-1] is not None)):
            out.append(line)
            prev_blank = False
            continue
        else:
            out.append(None)  # a block boundary
        prev_blank = not s
    return out


def commands(path):
    lines = code_lines(open(path, encoding="utf-8").read())
    cmds, cur = [], ""
    for line in lines:
        if line is None:
            cur = ""
            continue
        s = line.strip()
        cur = (cur + " " + s) if cur else s
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        full, cur = cur, ""
        full = re.sub(r"\s+#.*$", "", full)
        for part in full.split("&&"):
            part = part.strip()
            words = part.split()
            if not words:
                continue
            prog = os.path.basename(words[1] if words[0] == "python3" and len(words) > 1 else words[0])
            if prog.startswith("ewnet-") or words[0].startswith("build/examples/") or prog in OTHER + [CONVERTER]:
                cmds.append((prog, part))
    return cmds


OTHER = ["install-deps.sh", "cmake", "test.sh", "python3", "pytorch_compare.py", "OPENBLAS_NUM_THREADS=2"]
CONVERTER = "torch_to_safetensors.py"
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def have_torch():
    return subprocess.run([SYSTEM_PYTHON, "-c", "import torch, torchvision"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def prepare_inputs(work, words):
    """Inputs a reader brings: the generated images stand in for photos/ and a collected data/."""
    gen = os.path.join(work, "ewnet-transfer-run", "generated-data")
    if ("photos/" in words or "photo.jpg" in words) and not os.path.exists(os.path.join(work, "photos")):
        # JPEG photographs: the shared Caltech images (these commands read a checkpoint trained on them,
        # so they run only when ../shared is there).
        shots = os.path.join(work, "..", "shared", "datasets", "caltech101_handheld4")
        src = [os.path.join(dp, f) for dp, _, fs in sorted(os.walk(shots)) for f in sorted(fs) if f.endswith(".jpg")]
        os.makedirs(os.path.join(work, "photos"))
        for s in src[:2]:
            shutil.copy(s, os.path.join(work, "photos", os.path.basename(s)))
        shutil.copy(src[0], os.path.join(work, "photo.jpg"))
    for folder in ("data", "my-photos/", "my-photos", "line-photos/"):
        if folder in words and not os.path.exists(os.path.join(work, folder)):
            source = next(os.path.join(gen, d) for d in sorted(os.listdir(gen)) if os.path.isdir(os.path.join(gen, d)))
            dest = os.path.join(work, folder)
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.txt"))
            if folder == "data":  # as `ewnet-collect fetch` leaves it: with a manifest
                with open(os.path.join(dest, "manifest.csv"), "w") as f:
                    f.write("file,class,url,sha256,width,height\n")
                    for cls in sorted(os.listdir(dest)):
                        if not os.path.isdir(os.path.join(dest, cls)):
                            continue
                        for name in sorted(os.listdir(os.path.join(dest, cls))):
                            data = open(os.path.join(dest, cls, name), "rb").read()
                            w, h = struct.unpack(">II", data[16:24])  # a PNG's IHDR
                            f.write(f"{cls}/{name},{cls},generated:{cls}/{name},{hashlib.sha256(data).hexdigest()},"
                                    f"{w},{h}\n")
    if "rejects.txt" in words and not os.path.exists(os.path.join(work, "rejects.txt")):
        cls = sorted(d for d in os.listdir(os.path.join(work, "data"))
                     if not d.startswith("_") and os.path.isdir(os.path.join(work, "data", d)))[0]
        first = sorted(os.listdir(os.path.join(work, "data", cls)))[0]
        with open(os.path.join(work, "rejects.txt"), "w") as f:
            f.write(f"{cls}/{first}\n")


def main():
    root, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shared = os.path.abspath(os.path.join(root, "..", "shared"))
    have_shared = os.path.isdir(os.path.join(shared, "datasets"))
    scratch = os.path.join(build, "doc-commands")
    shutil.rmtree(scratch, ignore_errors=True)
    work = os.path.join(scratch, "repo")
    os.makedirs(work)
    os.symlink(os.path.join(root, "docs"), os.path.join(work, "docs"))
    os.symlink(build, os.path.join(work, "build"))
    if have_shared:
        os.symlink(shared, os.path.join(scratch, "shared"))
    bindir = os.path.join(scratch, "bin")
    os.makedirs(bindir)
    for p in PROGRAMS:
        exe = os.path.join(build, "examples", p, p)
        if os.path.exists(exe):
            os.symlink(exe, os.path.join(bindir, p))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))

    failures, skipped, ran, excluded = [], [], 0, []
    torch = have_torch()
    pending = []
    for doc in doc_files(root):
        rel = os.path.relpath(doc, root)
        if rel in WALKED_ELSEWHERE:
            excluded.append(f"{rel}: every command (the test {WALKED_ELSEWHERE[rel]} runs them as a walk-through)")
            continue
        for prog, cmd in commands(doc):
            if prog == CONVERTER:
                if torch:
                    pending.append((rel, prog, cmd))
                else:
                    skipped.append(f"{rel}: `{cmd}` (torch or torchvision is missing for {SYSTEM_PYTHON})")
            elif prog in OTHER:
                excluded.append(f"{rel}: `{cmd}` (not an ewnet program: the install, build and test commands are what CI itself runs; the benchmark needs its own setup)")
            elif prog not in PROGRAMS:
                failures.append(f"{rel}: `{cmd}`: no such ewnet program '{prog}'")
            elif prog == "ewnet-collect" and cmd.split()[1:2] == ["fetch"]:
                excluded.append(f"{rel}: `{cmd}` (needs the network)")
            elif "../shared/" in cmd and not have_shared:
                skipped.append(f"{rel}: `{cmd}` (../shared/datasets is absent)")
            else:
                pending.append((rel, prog, cmd))

    # Document order, except that a command reading a checkpoint waits for the command that writes
    # it (ewnet-classify's README comes before ewnet-train's in file order).
    def ready(words):
        return all(os.path.exists(os.path.join(work, w)) for w in words if w.endswith(".safetensors"))

    while pending:
        progress = False
        for item in list(pending):
            rel, prog, cmd = item
            words = shlex.split(cmd)
            if prog != CONVERTER and not ready(words):
                continue
            pending.remove(item)
            progress = True
            prepare_inputs(work, words)
            extra = SHORT.get(prog, []) + (["--image-size", "32"] if prog == "ewnet-finetune" and "--init" in words
                                           else [])
            argv = words + extra
            if words[0].startswith("build/"):
                argv[0] = os.path.join(work, words[0])
            if prog == CONVERTER:
                argv = [SYSTEM_PYTHON, os.path.join(root, words[1])] + ["--random" if w == "--pretrained" else w
                                                                        for w in words[2:]]
                extra = ["(--pretrained run as --random)"]
            t = time.time()
            r = subprocess.run(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            ran += 1
            print(f"[exit {r.returncode}] {rel}: {cmd}   (+ {' '.join(extra)})  {time.time() - t:.1f} s",
                  flush=True)
            if r.returncode != 0:
                failures.append(f"{rel}: `{cmd}` exited {r.returncode}:\n{r.stdout[-3000:]}")
        if not progress:
            break
    for rel, prog, cmd in pending:
        if not have_shared or not torch:
            skipped.append(f"{rel}: `{cmd}` (its checkpoint comes from a command skipped above)")
        else:
            failures.append(f"{rel}: `{cmd}` (no documented command writes the checkpoint it reads)")
    for e in excluded:
        print("not run:", e)
    for s in skipped:
        print("skipped:", s)
    for f in failures:
        print("FAILED:", f)
    print(f"{ran} documented commands ran, {len(failures)} failed, {len(skipped)} skipped, {len(excluded)} not run")
    if failures or ran == 0:
        return 1
    if skipped:
        return 1 if os.environ.get("CI") else 77
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
