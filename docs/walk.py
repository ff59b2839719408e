"""Count how one command's Python calls walk through the project's files (docs/experiments.md, "How many files
and hops"). Run from the repository root:

    python docs/walk.py stage1.py --data-dir D --results-dir R --gf-dim 8 --df-dim 8 --batch-size 8 \
        --epochs 1 --steps-per-epoch 1 --xla off
    python docs/walk.py generate.py --results-dir R --data-dir D --stage 1 --caption "a small yellow bird" --out S

At exit it prints one JSON line on stderr, counting calls of project functions (tests and import-time calls left
out; calls that Keras makes into a project layer are credited to the project function that called Keras):
- files: the project files whose functions ran;
- file_hops: calls into another project file (each one also returns to a file already left);
- direct_hops: those of them written in the project's code (not made by the framework on its behalf);
- reentries: calls back into a file that is still waiting further up the stack (A -> B -> A), i.e. ping-pong.
WALK_LOG=path appends each direct hop, WALK_REENTRY=path each re-entry, as "file:function -> file:function".
"""

import json
import os
import runpy
import sys
import threading

REPO = os.path.realpath(os.getcwd())


def in_project(path):
    path = os.path.realpath(path) if path and not path.startswith("<") else ""
    return path.startswith(REPO + os.sep) and os.sep + "tests" + os.sep not in path and not path.endswith("walk.py")


def project_caller(frame):
    back = frame.f_back
    while back is not None and not in_project(back.f_code.co_filename):
        back = back.f_back
    return back


def files_above(frame):
    out = set()
    while frame is not None:
        if frame.f_code.co_name != "<module>" and in_project(frame.f_code.co_filename):
            out.add(frame.f_code.co_filename)
        frame = frame.f_back
    return out


def log(variable, caller, frame):
    if os.environ.get(variable):
        with open(os.environ[variable], "a") as out:
            where = lambda f: f"{os.path.relpath(f.f_code.co_filename, REPO)}:{f.f_code.co_name}"
            out.write(f"{where(caller)} -> {where(frame)}\n")


counts = dict(files=set(), file_hops=0, direct_hops=0, reentries=0)


def profile(frame, event, arg):
    if event != "call" or frame.f_code.co_name == "<module>" or not in_project(frame.f_code.co_filename):
        return
    caller = project_caller(frame)
    if caller is None or (caller.f_code.co_name == "<module>" and caller.f_globals.get("__name__") != "__main__"):
        return  # import time: a module body calling its own helpers
    here = frame.f_code.co_filename
    counts["files"].add(os.path.relpath(os.path.realpath(here), REPO))
    if caller.f_code.co_filename == here:
        return
    counts["file_hops"] += 1
    if caller is frame.f_back:
        counts["direct_hops"] += 1
        log("WALK_LOG", caller, frame)
    if here in files_above(caller.f_back):
        counts["reentries"] += 1
        log("WALK_REENTRY", caller, frame)


def main():
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, REPO)
    sys.setprofile(profile)
    threading.setprofile(profile)
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.setprofile(None)
        files = sorted(counts.pop("files"))
        print(json.dumps(dict(script=script, exit=code, files=len(files), **counts, entered=files)), file=sys.stderr)


if __name__ == "__main__":
    main()
