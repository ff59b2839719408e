"""stackgan.safe_pickle: the data pickles load (the Python 2 fixtures, text pickles like the real files, Python 3
pickles of protocols 0-5), and hostile pickles are refused. Each hostile pickle is loaded in a fresh interpreter,
so that a crash (SIGSEGV from corrupted numpy memory) fails its test instead of ending pytest."""

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from stackgan.safe_pickle import CostlyPickle, RefusedPickle, load, loads

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PY2_FIXTURES = os.path.join(TESTS, "fixtures", "py2")
RNG = np.random.default_rng(0)


def assert_same(got, want):
    """`got` is `want`: same types and values; arrays of the same dtype, shape and layout, and writable."""
    assert type(got) is type(want)
    if isinstance(want, np.ndarray):
        assert (got.dtype, got.shape, np.isfortran(got)) == (want.dtype, want.shape, np.isfortran(want))
        assert got.flags.writeable
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    else:
        assert got == want


# --- hand-written opcodes (pickletools documents each one) -----------------------------------------------------

MARK, NONE, NEWFALSE = b"(", b"N", b"\x89"


def proto2(body):
    return b"\x80\x02" + body + b"."


def glob(module, name):  # GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def num(n):  # BININT, or LONG1 for a big int
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def py2str(data):  # BINSTRING: a Python 2 str
    return b"T" + struct.pack("<I", len(data)) + data


def text(s):  # BINUNICODE
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def tup(*items):  # MARK ... TUPLE
    return MARK + b"".join(items) + b"t"


def call(func, *args):  # REDUCE
    return func + tup(*args) + b"R"


def build(obj, *state):  # BUILD
    return obj + tup(*state) + b"b"


def dtype(code, order=b"<", subarray=NONE, names=NONE, fields=NONE, itemsize=-1, alignment=-1, flags=0):
    """numpy.dtype(code, 0, 1) with the BUILD state (3, order, subarray, names, fields, itemsize, alignment, flags)."""
    new = call(glob("numpy", "dtype"), py2str(code), num(0), num(1))
    return build(new, num(3), py2str(order), subarray, names, fields, num(itemsize), num(alignment), num(flags))


def array(dtype_ops, shape, data):
    """numpy's _reconstruct(ndarray, (0,), 'b') with the BUILD state (1, shape, dtype, False, data)."""
    empty = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(num(0)), py2str(b"b"))
    return build(empty, num(1), tup(*map(num, shape)), dtype_ops, NEWFALSE, data)


def nested_lists(levels):
    """The memo bomb: each list holds the one before it twice (EMPTY_LIST, MARK, BINGET x2, APPENDS, BINPUT)."""
    body = b"]q\x00"
    for level in range(1, levels):
        body += b"](h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"eq" + bytes([level])
    return proto2(body)


def test_hand_written_opcodes_make_a_legitimate_array():
    # The hostile pickles below are these with one part changed: unchanged, they load as the stdlib loads them.
    data = proto2(array(dtype(b"f4"), (2, 3), py2str(np.arange(6, dtype="<f4").tobytes())))
    assert_same(loads(data), pickle.loads(data, encoding="latin1"))
    assert_same(loads(data), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert len(nested_lists(27)) < 300


# --- the data files -----------------------------------------------------------------------------------------------


def read_fixture(name, **kwargs):
    with open(os.path.join(PY2_FIXTURES, name), "rb") as f:
        return load(f, **kwargs)


def stdlib_fixture(name):
    with open(os.path.join(PY2_FIXTURES, name), "rb") as f:
        return pickle.load(f, encoding="latin1")


@pytest.mark.parametrize("name", ["filenames.pickle", "class_info.pickle"])
def test_python2_fixture_lists(name):
    got = read_fixture(name)
    assert_same(got, stdlib_fixture(name))
    assert got and all(type(x) is (str if name == "filenames.pickle" else int) for x in got)


def test_python2_fixture_embeddings():
    got = read_fixture("char-CNN-RNN-embeddings.pickle")
    expected = np.load(os.path.join(PY2_FIXTURES, "expected_embeddings.npy"))
    assert type(got) is list and len(got) == len(expected)
    for emb, want in zip(got, expected):
        assert emb.dtype == np.float32 and emb.flags.writeable and emb.flags.owndata
        np.testing.assert_array_equal(emb, want)


def test_python2_fixtures_with_bytes_encoding():
    assert all(type(name) is bytes for name in read_fixture("filenames.pickle", encoding="bytes"))
    embeddings = read_fixture("char-CNN-RNN-embeddings.pickle", encoding="bytes")
    np.testing.assert_array_equal(np.stack(embeddings), np.load(os.path.join(PY2_FIXTURES, "expected_embeddings.npy")))


def py2_text_class_info(ids):
    """numpy int64 scalars in a list, as Python 2's cPickle writes them at protocol 0 (the real class_info.pickle)."""
    scalar_and_dtype = (
        b"cnumpy.core.multiarray\nscalar\np1\n(cnumpy\ndtype\np2\n(S'i8'\np3\nI0\nI1\ntp4\nRp5\n"
        b"(I3\nS'<'\np6\nNNNI-1\nI-1\nI0\ntp7\nb"
    )
    out = b"(lp0\n"
    for i, class_id in enumerate(ids):
        data = repr(struct.pack("<q", class_id))[1:].encode()  # a Python 2 str literal, escapes and all
        if i == 0:
            out += scalar_and_dtype + b"S" + data + b"\np8\ntp9\nRp10\na"
        else:  # the memo names the scalar function (1) and the dtype (5) again
            out += b"g1\n(g5\nS" + data + b"\ntRp%d\na" % (10 + i)
    return out + b"."


def test_python2_text_pickles_like_the_real_files():
    ids = [1, 200, 39, 34, 10, 92, 128, 255]  # bytes >= 0x80, quotes, a line break and a backslash in the data
    data = py2_text_class_info(ids)
    got = loads(data)
    assert_same(got, pickle.loads(data, encoding="latin1"))
    assert [type(x) for x in got] == [np.int64] * len(ids) and got == ids
    names = b"(lp0\nS'001.Black_footed_Albatross/Black_Footed_Albatross_0046_18'\np1\naS'caf\\xe9'\np2\na."
    assert loads(names) == ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18", "caf\xe9"]


def test_python3_text_pickles_like_the_real_files():
    ids = [np.int64(i) for i in (1, 200, 39, 10, 92)]
    data = pickle.dumps(ids, protocol=0).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    got = loads(data)
    assert [type(x) for x in got] == [np.int64] * len(ids) and got == ids
    names = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18", "café", "a\nb\\c'"]
    assert loads(pickle.dumps(names, protocol=0)) == names


PY3_OBJECTS = {
    "float32 (N,10,D)": RNG.standard_normal((4, 10, 8)).astype(np.float32),
    "list of (10,D)": [RNG.standard_normal((10, 8)).astype(np.float32) for _ in range(3)],
    "empty float": np.zeros((0, 10, 4), np.float32),
    "float32 scalar": np.float32(3.5),
    "int64 scalar": np.int64(-7),
    "tuple": (1, 2.5, "s", b"b", np.float32(3)),
    "bool array": np.array([True, False, True]),
    "int arrays": [np.arange(6, dtype=t).reshape(2, 3) for t in (np.int8, np.uint16, np.int32, np.int64)],
    "fortran": np.asfortranarray(RNG.standard_normal((3, 4))),
    "non-contiguous": np.arange(12.0).reshape(3, 4)[:, ::2],
    "0-d": np.array(2.5),
    "big-endian": np.arange(4, dtype=">f4"),  # native after protocols 0-4, '>f4' after 5: as numpy itself does
    "complex": [np.arange(3, dtype=np.complex64), np.complex128(1 - 1j), 1 + 2j],
    "float16": np.arange(3, dtype=np.float16),
    "plain Python": {"a": [None, True, 2**100, -1.5], 3: (b"", bytearray(b"\x00\xff"), "é")},
}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("name", PY3_OBJECTS)
def test_python3_pickles(name, protocol):
    data = pickle.dumps(PY3_OBJECTS[name], protocol=protocol)
    assert_same(loads(data), pickle.loads(data))


def test_empty_float_array_at_protocol_2():
    # Python 3 writes its empty data as builtins.bytes() and the dtype code b'b' with _codecs.encode.
    data = pickle.dumps(np.zeros((0, 10, 4), np.float32), protocol=2)
    assert b"bytes" in data and b"_codecs" in data
    got = loads(data)
    assert got.shape == (0, 10, 4) and got.dtype == np.float32


def test_sharing_is_kept():
    emb = np.ones((10, 4), np.float32)
    names = ["a", "b"]
    got = loads(pickle.dumps(([emb, emb], (names, names)), protocol=2))
    assert got[0][0] is got[0][1] and got[1][0] is got[1][1]


def test_load_reads_one_pickle_from_the_file_position():
    f = io.BytesIO(pickle.dumps([1, 2], protocol=0) + pickle.dumps("next", protocol=4))
    assert load(f) == [1, 2]
    assert load(f) == "next"
    assert f.read() == b""


def test_load_from_an_unseekable_stream():
    class Stream(io.RawIOBase):
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.data.readinto(buffer)

    assert load(io.BufferedReader(Stream(pickle.dumps([np.float32(1)], protocol=2)))) == [np.float32(1)]


def test_two_megabyte_list_of_arrays_loads_fast():
    arrays = [RNG.standard_normal((10, 1024)).astype(np.float32) for _ in range(50)]
    data = proto2(b"](" + b"".join(array(dtype(b"f4"), (10, 1024), py2str(a.tobytes())) for a in arrays) + b"e")
    assert 2_000_000 < len(data) < 2_200_000
    start = time.perf_counter()
    got = loads(data, max_expansion=1)  # unshared, its expanded size is about the file's size
    assert time.perf_counter() - start < 1.0
    assert_same(got, arrays)


def test_max_bytes_bounds_the_array_bytes():
    assert issubclass(CostlyPickle, pickle.UnpicklingError) and issubclass(RefusedPickle, pickle.UnpicklingError)
    data = pickle.dumps([np.zeros(100, np.float32)], protocol=2)
    with pytest.raises(CostlyPickle, match="array bytes: more than max_bytes=100"):
        loads(data, max_bytes=100)
    assert loads(data, max_bytes=400)[0].shape == (100,)


@pytest.mark.parametrize(
    "data",
    [b"", pickle.dumps([1, 2, 3], protocol=2)[:-3], b"\x80\x02]\xff.", b"\x80\x02e.", b"\x80\x02h\x05.", b"\x80\x07N."],
    ids=["empty", "truncated", "unknown opcode", "no MARK", "memo miss", "protocol 7"],
)
def test_damage_raises_what_the_stdlib_raises(data):
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)) as err:
        loads(data)
    assert not isinstance(err.value, (RefusedPickle, CostlyPickle))


# --- hostile pickles, each loaded in a fresh interpreter -----------------------------------------------------------

LOAD_IN_A_FRESH_INTERPRETER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from stackgan import safe_pickle
    data = sys.stdin.buffer.read()
    start = time.perf_counter()
    try:
        obj = safe_pickle.loads(data)
    except Exception as err:
        seconds = time.perf_counter() - start
        what = getattr(err, "what", None)
        print(json.dumps({"error": type(err).__name__, "what": what, "message": str(err), "seconds": seconds}))
    else:
        repr(obj)  # walk it, as a caller would
        print(json.dumps({"loaded": type(obj).__name__}))
    """
)


def load_hostile(data, cwd):
    """What loading `data` did in a fresh interpreter: {"error": type name, "what", "message", "seconds"}."""
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_INTERPRETER, ROOT], input=data, capture_output=True, cwd=cwd, timeout=60
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr.decode()[-2000:]}"
    result = json.loads(proc.stdout)
    assert "error" in result, f"loaded: {result}"
    assert "\n" not in result["message"]
    return result


def assert_refused(data, what, cwd):
    result = load_hostile(data, cwd)
    assert (result["error"], result["what"]) == ("RefusedPickle", what), result


def assert_costly(data, message, cwd):
    result = load_hostile(data, cwd)
    assert result["error"] == "CostlyPickle" and result["message"].startswith(message), result
    return result


def test_object_dtype_with_flags_cleared(tmp_path):
    # numpy would take the 8 bytes as an object pointer.
    assert_refused(proto2(array(dtype(b"O8", b"|", flags=0), (1,), py2str(b"A" * 8))), "dtype 'O8'", tmp_path)


def test_float_dtype_claiming_object_flags(tmp_path):
    ops = dtype(b"f8", b"|", itemsize=8, alignment=1, flags=63)
    assert_refused(proto2(array(ops, (1,), py2str(b"A" * 8))), "dtype flags 63 (an object dtype's)", tmp_path)


def field_past_the_item(code):
    """A dtype of 8-byte items whose one field, a float64, lies 2**40 bytes into the item."""
    fields = b"}" + py2str(b"a") + tup(dtype(b"f8"), num(2**40)) + b"s"  # {'a': (dtype('f8'), 2**40)}
    return dtype(code, b"|", names=tup(py2str(b"a")), fields=fields, itemsize=8, alignment=1, flags=16)


@pytest.mark.parametrize("code, what", [(b"V8", "dtype 'V8'"), (b"f8", "a structured dtype")])
def test_structured_dtype_with_a_field_past_the_item(tmp_path, code, what):
    assert_refused(proto2(array(field_past_the_item(code), (1,), py2str(b"A" * 8))), what, tmp_path)


def test_sub_array_dtype(tmp_path):
    ops = dtype(b"f8", b"|", subarray=tup(dtype(b"f8"), tup(num(2**40))))
    assert_refused(proto2(array(ops, (1,), py2str(b"A" * 8))), "a sub-array dtype", tmp_path)


@pytest.mark.parametrize("shape", [(100,), (2**62,), (2**31, 2**31)])
def test_array_declared_bigger_than_its_bytes(tmp_path, shape):
    data = proto2(array(dtype(b"f8"), shape, py2str(b"\x00" * 8)))
    assert_costly(data, f"array bytes: shape {shape} of float64 needs", tmp_path)


def test_arrays_reusing_one_memoised_data_string(tmp_path):
    data_ops = py2str(b"\x00" * 100_000) + b"q\x01"  # BINPUT 1, then BINGET 1 for each further array
    arrays = [array(dtype(b"f8"), (12_500,), data_ops if i == 0 else b"h\x01") for i in range(3)]
    assert_costly(proto2(b"](" + b"".join(arrays) + b"e"), "array bytes: more than", tmp_path)


def test_strings_encoded_again_and_again(tmp_path):
    encode = glob("_codecs", "encode") + b"q\x00"
    first = call(encode, text("x" * 100_000) + b"q\x01", text("latin1") + b"q\x02")
    again = b"h\x00(h\x01h\x02tR"  # _codecs.encode of the memoised string: 8 bytes for 100,000
    assert_costly(proto2(b"](" + first + again * 100 + b"e"), "expanded size: more than", tmp_path)


def test_shared_lists_memo_bomb(tmp_path):
    result = assert_costly(nested_lists(27), "expanded size: more than", tmp_path)
    assert result["seconds"] < 1.0


@pytest.mark.parametrize(
    "body",
    [b"(" * 200_000 + b"l" * 200_000, b"]" * 200_000 + b"a" * 199_999, b")" + b"\x85" * 200_000],
    ids=["MARK/LIST", "EMPTY_LIST/APPEND", "EMPTY_TUPLE/TUPLE1"],
)
def test_deep_nesting(tmp_path, body):
    assert_costly(proto2(body), "nesting depth: more than max_depth=100", tmp_path)


def test_list_inside_itself(tmp_path):
    assert_costly(proto2(b"]q\x00h\x00a"), "expanded size: infinite", tmp_path)


class RunsACommand:
    def __reduce__(self):
        return os.system, ("touch marker",)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system(tmp_path, protocol):
    assert_refused(pickle.dumps(RunsACommand(), protocol=protocol), f"{os.system.__module__}.system", tmp_path)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    "module, name, args",
    [
        ("builtins", "eval", text("__import__('os').system('touch marker')")),
        ("builtins", "getattr", glob("numpy", "dtype") + text("__class__")),
        ("subprocess", "Popen", tup(text("touch"), text("marker"))),
        ("numpy", "load", text("marker")),
    ],
    ids=["eval", "getattr", "Popen", "numpy.load"],
)
def test_globals_that_run_code(tmp_path, module, name, args):
    assert_refused(proto2(call(glob(module, name), args)), f"{module}.{name}", tmp_path)
    assert not (tmp_path / "marker").exists()


def test_reconstruct_of_another_class(tmp_path):
    ops = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "dtype"), tup(num(0)), py2str(b"b"))
    assert_refused(proto2(ops), "numpy's _reconstruct of the global numpy.dtype", tmp_path)


@pytest.mark.parametrize("codec", ["rot13", "zlib"])
def test_codecs_encode_with_another_codec(tmp_path, codec):
    ops = call(glob("_codecs", "encode"), text("x" * 1000) if codec == "rot13" else b"C\x03abc", text(codec))
    assert_refused(proto2(ops), f"_codecs.encode with codec '{codec}'", tmp_path)


def test_out_of_band_buffer(tmp_path):
    data = pickle.dumps(np.arange(3), protocol=5, buffer_callback=lambda buffer: False)
    assert_refused(data, "an out-of-band buffer (opcode NEXT_BUFFER)", tmp_path)


@pytest.mark.parametrize(
    "data, what",
    [
        (pickle.dumps({1, 2}, protocol=4), "a set (opcode EMPTY_SET)"),
        (proto2(glob("numpy", "dtype") + tup(text("f4")) + b"\x81"), "an instance (opcode NEWOBJ)"),
        (b"Pmarker\n.", "a persistent id (opcode PERSID)"),
    ],
    ids=["set", "NEWOBJ", "PERSID"],
)
def test_opcodes_for_other_objects(tmp_path, data, what):
    assert_refused(data, what, tmp_path)


def test_dict_key_of_shared_tuples(tmp_path):
    # Hashing 40 tuples that each hold the one before twice takes 2**40 steps.
    # POP the tuple before (it stays in the memo), BINGET it twice, TUPLE2, BINPUT the new one.
    key = b")q\x00" + b"".join(b"0h%ch%c\x86q%c" % (i, i, i + 1) for i in range(40))
    assert_refused(proto2(b"}" + key + NONE + b"s"), "a dict key of type tuple", tmp_path)


def test_dict_keys_crafted_to_collide(tmp_path):
    keys = b"".join(num(i * (2**61 - 1)) + NONE for i in range(1, 1000))  # all hash to 0
    assert_refused(proto2(b"}(" + keys + b"u"), "a dict key of type int, 2**61 - 1 or more in size", tmp_path)


def test_refusal_message_is_one_line(tmp_path):
    data = b"\x80\x04" + text("os\r\n") + text("system\nmore") + b"\x93."  # STACK_GLOBAL
    result = load_hostile(data, tmp_path)
    assert (result["error"], result["what"]) == ("RefusedPickle", "os\r\n.system\nmore")
    assert result["message"] == "refused os\\r\\n.system\\nmore: the data files never need it"
