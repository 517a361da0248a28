"""Every reader fed a thousand randomly corrupted files (seeded): a one-line error naming the file, or, for the
training readers, a counted skip — never another exception type, a hang or a silent wrong count."""

import base64, copy, json, random, shutil, signal
from pathlib import Path
import pytest
from lynx_lite.records import (
    BadSample,
    SkipLog,
    load_conversation_bench,
    load_conversations,
    load_llavabench,
    load_mcq,
    load_mme,
    load_mmbench,
    load_openvqa,
    load_pairs,
    load_pope,
    load_seedbench,
    load_text_instructions,
)

WORLD = Path(__file__).parent.parent / "nbs" / "data" / "shapes"
N = 1000  # corrupted files per reader
WRONG = [None, 0, -1, 2.5, True, "", " ", "x" * 100_000, [], ["a"], {}, {"a": 1}, "\udcff", "../../etc/passwd"]


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang("a reader ran past 10 s")


def mutate_obj(rng: random.Random, obj):
    "One structural corruption of a JSON value: a key dropped or given a wrong type, an item replaced, ..."
    if isinstance(obj, list) and obj:
        i = rng.randrange(len(obj))
        if rng.random() < 0.2:
            obj[i] = copy.deepcopy(rng.choice(WRONG))
        else:
            obj[i] = mutate_obj(rng, obj[i])
        return obj
    if isinstance(obj, dict) and obj:
        k = rng.choice(sorted(obj))
        r = rng.random()
        if r < 0.3:
            del obj[k]
        elif r < 0.7 or not isinstance(obj[k], (list, dict)):
            obj[k] = copy.deepcopy(rng.choice(WRONG))
        else:
            obj[k] = mutate_obj(rng, obj[k])
        return obj
    return copy.deepcopy(rng.choice(WRONG))


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    "One byte-level corruption: truncated, bytes flipped, bad UTF-8 inserted, a line duplicated or a huge one added."
    r, n = rng.random(), max(1, len(data))
    if r < 0.3:
        return data[: rng.randrange(n)]
    if r < 0.5:
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] = rng.randrange(256)
        return bytes(b)
    if r < 0.7:
        i = rng.randrange(n)
        return data[:i] + rng.choice([b"\xff\xfe", b"\x00", b"\xc3", b"\xed\xa0\x80", b"\t\t", b'"']) + data[i:]
    lines = data.split(b"\n")
    if r < 0.85 and lines:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
    else:
        lines.insert(rng.randrange(len(lines) + 1), b'{"x": "' + b"y" * 200_000 + b'"}')
    return b"\n".join(lines)


def corrupt_json_file(rng, path: Path, jsonl: bool) -> None:
    "Rewrite `path` corrupted: its records mutated (structure), then sometimes its bytes."
    text = path.read_text()
    objs = [json.loads(line) for line in text.splitlines() if line.strip()] if jsonl else json.loads(text)
    for _ in range(rng.randint(1, 3)):
        objs = mutate_obj(rng, objs)
    if jsonl and isinstance(objs, list):
        data = "\n".join(json.dumps(o) for o in objs).encode() + b"\n"
    else:
        data = json.dumps(objs).encode()
    if rng.random() < 0.5:
        data = mutate_bytes(rng, data)
    path.write_bytes(data)


def small_copy(tmp: Path, name: str, lines: int = 6) -> Path:
    "The first `lines` records of a shipped file (a JSON list or JSONL) in `tmp`."
    src, dst = WORLD / name, tmp / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".json") and src.read_text().lstrip().startswith("["):
        dst.write_text(json.dumps(json.loads(src.read_text())[:lines]))
    else:
        dst.write_text("\n".join(src.read_text().splitlines()[:lines]) + "\n")
    return dst


def check(fn, files: list[Path], training: bool = False, count=None):
    "Run `fn()`: a result, a counted skip, or a one-line error that names one of `files`."
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        out = fn()
    except (BadSample, FileNotFoundError) as e:
        msg = str(e)
        assert "\n" not in msg, msg[:300]
        assert any(str(f) in msg for f in files), msg[:300]
        return "error"
    finally:
        signal.alarm(0)
    if count is not None:
        assert count(out), "a silent wrong count"
    return "ok"


def lines_of(path: Path) -> int:
    "Non-empty lines of a JSONL file, read as the readers read it."
    return sum(1 for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line.strip())


TRAINING = {  # reader, shipped file, JSONL?
    "pairs": (load_pairs, "captions.jsonl", True),
    "conversations": (load_conversations, "instructions.json", False),
    "text": (load_text_instructions, "text_instructions.jsonl", True),
}


@pytest.mark.parametrize("kind", TRAINING)
def test_training_readers_skip_and_count(tmp_path, kind):
    reader, name, jsonl = TRAINING[kind]
    rng, seen = random.Random(f"train:{kind}"), set()
    for i in range(N):
        path = small_copy(tmp_path / str(i), name)
        corrupt_json_file(rng, path, jsonl)
        skips = SkipLog()

        def count(out, path=path, skips=skips):
            if jsonl:
                return len(out) + skips.total == lines_of(path)
            try:
                items = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            except ValueError:
                return True
            return not isinstance(items, list) or len(out) + skips.total == len(items)

        seen.add(check(lambda: reader(path, strict=False, skips=skips), [path], True, count))
        shutil.rmtree(tmp_path / str(i))
    assert "ok" in seen


BENCH = {  # reader of one file, shipped file, JSONL?
    "openvqa": (load_openvqa, "openvqa_images.jsonl", True),
    "mcq": (load_mcq, "mcq.jsonl", True),
    "pope": (load_pope, "shapes_pope_random.json", True),
    "conversation": (load_conversation_bench, "conversation.json", False),
}


@pytest.mark.parametrize("kind", BENCH)
def test_benchmark_readers_fail_in_one_line(tmp_path, kind):
    reader, name, jsonl = BENCH[kind]
    rng, seen = random.Random(f"bench:{kind}"), set()
    for i in range(N):
        path = small_copy(tmp_path / str(i), name)
        corrupt_json_file(rng, path, jsonl)
        seen.add(check(lambda: reader(path), [path]))
        shutil.rmtree(tmp_path / str(i))
    assert seen == {"ok", "error"}, seen


def test_seedbench(tmp_path):
    rng, seen = random.Random("seed"), set()
    base = json.loads((WORLD / "seed_bench" / "SEED-Bench.json").read_text())
    base["questions"] = base["questions"][:6]
    for i in range(N):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(base))
        corrupt_json_file(rng, path, jsonl=False)
        seen.add(check(lambda: load_seedbench(path, tmp_path), [path]))
    assert seen == {"ok", "error"}, seen


def test_mmbench(tmp_path):
    rng, seen = random.Random("mmbench"), set()
    head, *rows = (WORLD / "mmbench.tsv").read_text().splitlines()
    for i in range(N):
        path = tmp_path / f"{i}.tsv"
        cells = [r.split("\t") for r in rows[:6]]
        for _ in range(rng.randint(1, 3)):  # a cell emptied, given bad base64, a huge or tab-split value
            row = rng.choice(cells)
            row[rng.randrange(len(row))] = rng.choice(["", "nan", "!!notbase64!!", "x" * 100_000, "a\tb", "7"])
        data = "\n".join([head, *("\t".join(c) for c in cells)]).encode()
        path.write_bytes(mutate_bytes(rng, data) if rng.random() < 0.5 else data)
        seen.add(check(lambda: load_mmbench(path, tmp_path / f"img{i}"), [path]))
    assert seen == {"ok", "error"}, seen


def test_mme_folders(tmp_path):
    rng, seen = random.Random("mme"), set()
    sub = WORLD / "mme" / "count"
    for i in range(N):
        root = tmp_path / str(i)
        (root / "count").mkdir(parents=True)
        for txt in sorted(sub.glob("*.txt"))[:4]:
            shutil.copy(txt, root / "count" / txt.name)
            shutil.copy(txt.with_suffix(".png"), root / "count" / txt.with_suffix(".png").name)
        victim = rng.choice(sorted((root / "count").glob("*.txt")))
        victim.write_bytes(mutate_bytes(rng, victim.read_bytes()))
        files = [str(p) for p in (root / "count").glob("*.txt")]
        skips = SkipLog()
        seen.add(check(lambda: load_mme(root), files))
        check(lambda: load_mme(root, strict=False, skips=skips), files)  # training mode: skipped and counted
        shutil.rmtree(root)
    assert seen == {"ok", "error"}, seen


def test_llavabench_folders(tmp_path):
    rng, seen = random.Random("llavabench"), set()
    for i in range(N):
        folder = tmp_path / str(i)
        shutil.copytree(WORLD / "llava_bench", folder, ignore=shutil.ignore_patterns("images"))
        for name in ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl"):
            (folder / name).write_text("\n".join((folder / name).read_text().splitlines()[:6]) + "\n")
        corrupt_json_file(rng, folder / rng.choice(["questions.jsonl", "context.jsonl", "answers_gpt4.jsonl"]), True)
        files = [folder / n for n in ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl")]
        seen.add(check(lambda: load_llavabench(folder), files))
        shutil.rmtree(folder)
    assert seen == {"ok", "error"}, seen


def test_mutators_are_seeded():
    a, b = random.Random(1), random.Random(1)
    data = (WORLD / "captions.jsonl").read_bytes()[:2000]
    assert mutate_bytes(a, data) == mutate_bytes(b, data)
    assert base64.b64encode(b"x")  # the module's imports are all used
