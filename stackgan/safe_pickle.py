"""Load the StackGAN data pickles without letting a pickle run code, corrupt memory or cost more than its size.

The data files (filenames.pickle, class_info.pickle and char-CNN-RNN-embeddings.pickle from birds.zip, written
by Python 2) hold lists of strings, of ints or numpy int64 scalars, and of float32 arrays. `load` and `loads`
build that kind of data, from Python 2 or 3 pickles of protocols 0 to 5, and nothing else:

    None, bool, int, float, complex, str, bytes, bytearray, list, tuple, dict (keys: str, bytes, or int
    below 2**61 in size), and numpy dtypes, arrays and scalars of the plain numeric kinds b, i, u, f and c,
    in either byte order.

Why not pickle.Unpickler with a whitelist of globals: numpy's own names are enough to corrupt memory. The
BUILD state of a numpy.dtype (dtype.__setstate__) can clear an object dtype's flags or give a structured dtype
a field past the end of its item, and ndarray.__setstate__ then lays bytes from the file under it: numpy reads
them as object pointers or out of bounds, and the process dies (SIGSEGV). So no data from the file reaches
numpy's __setstate__ here. The opcodes are interpreted by this module (pickletools reads their arguments), the
few globals the files name are replaced by stand-ins that check their arguments, and each array is made by
np.frombuffer from (plain dtype, shape, bytes) once the bytes are known to match the shape.

Why bounds: sharing is cheap to write and expensive to walk. Through the memo, a 275-byte pickle makes 26
nested lists that each hold the previous one twice; it unpickles at once, but np.asarray over it walks 2**26
lists (4 GB, about a minute). So before anything is returned, the result is measured as if every shared object
were copied out (its expanded size), and refused when that size, its nesting depth or its array bytes exceed
a small multiple of the file's size. Walking what `load` returns costs at most that much.

RefusedPickle: the pickle names something the files never need. CostlyPickle: it is over a bound. A truncated
or garbled pickle raises what the standard library would: pickle.UnpicklingError, EOFError, ValueError, ...
"""

import codecs
import io
import math
import pickle
import pickletools

import numpy as np

# The expanded size may be this many times the file's size. It counts 1 per object plus the bytes of each str,
# bytes, bytearray and array, once per reference: without sharing it is at most the file's size, since every
# object costs at least one opcode byte and every string or array carries its bytes in the file (the real
# 88,550-row files are lists of strings, ints and arrays, about 1x). 64x leaves room for legitimate sharing (a
# memoised string named again by a 2-byte BINGET) while keeping any walk of the result linear in the file.
MAX_EXPANSION = 64
# Containers nest 1 to 3 deep in the data (a list of arrays, a tuple in a list); 100 stays well below Python's
# recursion limit (1000), so that a recursive walk of the result (repr, copy.deepcopy, json) cannot overflow.
MAX_DEPTH = 100
# Added to the bounds on expanded size and array bytes, so that a tiny pickle is never refused on rounding.
SLACK = 10_000

_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1"}  # the codec names pickle writes for bytes
# numpy.dtype's codes for the plain kinds: kind and item size, as numpy pickles a dtype ("f4", "i8", "b1")
_DTYPE_CODES = {"b1"} | {f"{kind}{n}" for kind in "iu" for n in (1, 2, 4, 8)}
_DTYPE_CODES |= {f"f{n}" for n in (2, 4, 8, 16)} | {f"c{n}" for n in (8, 16, 32)}
_HASH_MODULUS = 2**61 - 1  # ints below it in size hash to themselves (-1 to -2): no crafted dict collisions
_SHOWN = 200  # characters of a name or value from the file that a message shows


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names something the data files never need: a global such as os.system, a dtype other than
    plain numbers, an opcode for other objects (sets, instances, out-of-band buffers). `what` names it."""

    def __init__(self, what):
        self.what = what[:_SHOWN]
        super().__init__(f"refused {_one_line(what)}: the data files never need it")


class CostlyPickle(pickle.UnpicklingError):
    """The pickle is over a bound: nesting depth, expanded size or array bytes. The message names the bound."""


def load(file, *, encoding="latin1", max_expansion=MAX_EXPANSION, max_depth=MAX_DEPTH, max_bytes=None):
    """The object pickled in a binary file, read from its current position up to the pickle's STOP opcode.

    encoding decodes Python 2 str as pickle.load does ("bytes" keeps them as bytes). The expanded size may be
    max_expansion x (the file's size) + SLACK, containers may nest max_depth deep, and the arrays and numpy
    scalars together may hold the file's size + SLACK bytes, or max_bytes if that is smaller. Arrays come back
    writable, owning their data."""
    if not getattr(file, "seekable", lambda: False)():  # a pipe or socket: read it whole to know its size
        return loads(
            file.read(), encoding=encoding, max_expansion=max_expansion, max_depth=max_depth, max_bytes=max_bytes
        )
    start = file.tell()
    size = file.seek(0, io.SEEK_END) - start
    file.seek(start)
    return _Loader(size, encoding, max_expansion, max_depth, max_bytes).run(_Capped(file, size))


def loads(data, *, encoding="latin1", max_expansion=MAX_EXPANSION, max_depth=MAX_DEPTH, max_bytes=None):
    """The object pickled in `data` (bytes); see load."""
    return _Loader(len(data), encoding, max_expansion, max_depth, max_bytes).run(io.BytesIO(data))


class _Capped:
    """A binary file read no further than `size` bytes: a length in the pickle cannot make read() allocate more."""

    def __init__(self, file, size):
        self._file, self._left = file, size

    def read(self, n):
        data = self._file.read(max(0, min(n, self._left)))
        self._left -= len(data)
        return data

    def readline(self):
        data = self._file.readline(self._left)
        self._left -= len(data)
        return data


def _read_py2_string(f):
    """STRING's argument: a quoted, backslash-escaped Python 2 str, as latin-1 text like BINSTRING's (pickletools'
    own reader decodes it as ASCII, which fails on the bytes of a numpy scalar)."""
    data = pickletools.read_stringnl(f, decode=False)
    return codecs.escape_decode(data)[0].decode("latin-1")


def _read_global_name(f):
    """GLOBAL's and INST's argument: module and name, one line each, UTF-8 and unescaped as pickle reads them."""
    lines = [f.readline() for _ in range(2)]
    if not all(line.endswith(b"\n") for line in lines):
        raise pickle.UnpicklingError("a GLOBAL opcode's module or name has no end of line")
    return tuple(line[:-1].decode("utf-8") for line in lines)


_READERS = {"stringnl": _read_py2_string, "stringnl_noescape_pair": _read_global_name}
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_REFUSED_OPCODES = {  # opcodes for objects the data files never hold
    "NEXT_BUFFER": "an out-of-band buffer",
    "READONLY_BUFFER": "an out-of-band buffer",
    "EMPTY_SET": "a set",
    "ADDITEMS": "a set",
    "FROZENSET": "a frozenset",
    "INST": "an instance",
    "OBJ": "an instance",
    "NEWOBJ": "an instance",
    "NEWOBJ_EX": "an instance",
    "EXT1": "an extension code",
    "EXT2": "an extension code",
    "EXT4": "an extension code",
    "PERSID": "a persistent id",
    "BINPERSID": "a persistent id",
}
_CONTAINERS = (list, tuple, dict)


class _Global:
    """What GLOBAL or STACK_GLOBAL pushes for a whitelisted name: the name and its stand-in (None: not callable)."""

    __slots__ = ("name", "call")

    def __init__(self, name, call):
        self.name, self.call = name, call


class _ArrayState:
    """numpy's _reconstruct(ndarray, ...) result: an array that its BUILD state supplies."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None


class _DtypeState:
    """A numpy.dtype(code) result: a plain dtype whose BUILD state may set the byte order (others may share it)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


class _Loader:
    """One load: the pickle machine (stack, marks, memo) and the bounds, over one file's opcodes."""

    def __init__(self, size, encoding, max_expansion, max_depth, max_bytes):
        self.encoding = encoding
        self.latin1 = encoding != "bytes" and codecs.lookup(encoding).name == "iso8859-1"
        self.max_depth = max_depth
        self.max_size = max_expansion * size + SLACK
        self.size_bound = f"{self.max_size} ({max_expansion} x {size} file bytes + {SLACK})"
        self.max_array_bytes = size + SLACK
        self.array_bound = f"{self.max_array_bytes} (the file's {size} bytes + {SLACK})"
        if max_bytes is not None and max_bytes < self.max_array_bytes:
            self.max_array_bytes, self.array_bound = max_bytes, f"max_bytes={max_bytes}"
        self.copied = 0  # bytes copied by stand-ins (a memoised str can be encoded again and again)
        self.array_bytes = 0
        self.stack, self.marks, self.memo = [], [], {}

    def run(self, file):
        """Interpret the opcodes up to STOP, then finish the object on top of the stack."""
        while True:
            code = file.read(1)
            op = _OPCODES.get(code)
            if op is None:
                if not code:
                    raise EOFError("the pickle ends before its STOP opcode")
                raise pickle.UnpicklingError(f"unknown opcode {code!r}")
            arg = None if op.arg is None else _READERS.get(op.arg.name, op.arg.reader)(file)
            if op.name == "STOP":
                return self._finish(self._pop())
            handler = _HANDLERS.get(op.name)
            if handler is None:
                raise RefusedPickle(f"{_REFUSED_OPCODES.get(op.name, 'an object')} (opcode {op.name})")
            handler(self, arg)

    # --- the stack ---------------------------------------------------------------------------------------------

    def _pop(self):
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        return self.stack.pop()

    def _top(self, kind, opname):
        """The object on top of the stack, which `opname` needs to be a `kind`."""
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        if type(self.stack[-1]) is not kind:
            raise pickle.UnpicklingError(f"{opname} on {_describe(self.stack[-1])}, not a {kind.__name__}")
        return self.stack[-1]

    def _pop_mark(self):
        """The objects pushed since the last MARK, which is removed."""
        if not self.marks:
            raise pickle.UnpicklingError("could not find MARK")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def _push(self, value):
        self.stack.append(value)

    def _push_py2_str(self, text):
        """A Python 2 str (read as latin-1 text), decoded with `encoding` as pickle.load does."""
        if self.encoding == "bytes":
            self.stack.append(text.encode("latin-1"))
        else:
            self.stack.append(text if self.latin1 else text.encode("latin-1").decode(self.encoding))

    def _proto(self, protocol):
        if protocol > pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"unsupported pickle protocol: {protocol}")

    def _mark(self, _):
        self.marks.append(self.stack)
        self.stack = []

    def _pop_op(self, _):
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    def _pop_mark_op(self, _):
        self._pop_mark()

    def _dup(self, _):
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        self.stack.append(self.stack[-1])

    # --- containers --------------------------------------------------------------------------------------------

    def _append(self, _):
        value = self._pop()
        self._top(list, "APPEND").append(value)

    def _appends(self, _):
        items = self._pop_mark()
        self._top(list, "APPENDS").extend(items)

    def _list(self, _):
        items = self._pop_mark()  # before naming self.stack, which _pop_mark replaces
        self.stack.append(items)

    def _tuple(self, _):
        items = self._pop_mark()
        self.stack.append(tuple(items))

    def _dict(self, _):
        items = self._pop_mark()
        self.stack.append({})
        self._set_items(self.stack[-1], items)

    def _setitem(self, _):
        value = self._pop()
        key = self._pop()
        self._set_items(self._top(dict, "SETITEM"), [key, value])

    def _setitems(self, _):
        items = self._pop_mark()
        self._set_items(self._top(dict, "SETITEMS"), items)

    @staticmethod
    def _set_items(target, items):
        """Store alternate keys and values. Keys are str, bytes or ints below 2**61: no tuple (hashing a deep or
        shared one recurses or takes exponential time) and no ints crafted to collide in the hash table."""
        if len(items) % 2:
            raise pickle.UnpicklingError("a dict's items are not key, value pairs")
        for key, value in zip(items[::2], items[1::2]):
            if type(key) is int and abs(key) >= _HASH_MODULUS:
                raise RefusedPickle("a dict key of type int, 2**61 - 1 or more in size")
            if type(key) not in (str, bytes, int):
                raise RefusedPickle(f"a dict key of type {_describe(key)}")
            target[key] = value

    # --- the memo ----------------------------------------------------------------------------------------------

    def _put(self, index):
        if not 0 <= index < 2**32:  # also keeps crafted colliding ints out of the memo
            raise pickle.UnpicklingError(f"memo index {index} out of range")
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        self.memo[index] = self.stack[-1]

    def _memoize(self, _):
        self._put(len(self.memo))

    def _get(self, index):
        if index not in self.memo:
            raise pickle.UnpicklingError(f"memo value not found at index {index}")
        self.stack.append(self.memo[index])

    # --- globals, REDUCE and BUILD -----------------------------------------------------------------------------

    def _global(self, names):
        module, name = names
        if (module, name) not in _GLOBALS:
            raise RefusedPickle(f"{module}.{name}")
        self.stack.append(_Global(f"{module}.{name}", _GLOBALS[module, name]))

    def _stack_global(self, _):
        name = self._pop()
        module = self._pop()
        if type(module) is not str or type(name) is not str:
            raise pickle.UnpicklingError("STACK_GLOBAL requires str")
        self._global((module, name))

    def _reduce(self, _):
        args = self._pop()
        func = self._pop()
        if type(func) is not _Global or func.call is None:
            raise RefusedPickle(f"calling {_describe(func)}")
        if type(args) is not tuple:
            raise pickle.UnpicklingError(f"the arguments of {func.name} are {_describe(args)}, not a tuple")
        self.stack.append(func.call(self, *args))

    def _build(self, _):
        """BUILD gives a dtype its byte order and an array its shape, dtype and bytes; nothing else takes a state."""
        state = self._pop()
        if self.stack and type(self.stack[-1]) is _DtypeState:
            self.stack[-1].dtype = _dtype_with_state(self.stack[-1].dtype, state)
        elif self.stack and type(self.stack[-1]) is _ArrayState:
            self.stack[-1].array = self._array_from_state(state)
        else:
            raise RefusedPickle(f"a state for {_describe(self.stack[-1]) if self.stack else 'nothing'} (BUILD)")

    # --- stand-ins for the whitelisted globals -----------------------------------------------------------------

    def _reconstruct(self, cls, _shape, _code):
        """numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'): an array awaiting its BUILD state."""
        if type(cls) is not _Global or cls.name != "numpy.ndarray":
            raise RefusedPickle(f"numpy's _reconstruct of {_describe(cls)}")
        return _ArrayState()

    def _new_dtype(self, code, _align=False, _copy=True):
        """numpy.dtype('f4', False, True): a plain numeric dtype, in native byte order until its BUILD state."""
        code = _text(code)
        if type(code) is not str or code not in _DTYPE_CODES:
            raise RefusedPickle(f"dtype {_shown(code)}")
        return _DtypeState(np.dtype(code))

    def _scalar(self, dtype, data):
        """numpy.core.multiarray.scalar(dtype, bytes): a numpy scalar."""
        return self._array(_plain(dtype), (), data, False)[()]

    def _frombuffer(self, buffer, dtype, shape, order):
        """numpy.core.numeric._frombuffer(bytes, dtype, shape, order): how protocol 5 pickles an array in band."""
        if order not in ("C", "F"):
            raise pickle.UnpicklingError(f"array order {_shown(order)} is not 'C' or 'F'")
        return self._array(_plain(dtype), shape, buffer, order == "F")

    def _encode(self, text, codec):
        """_codecs.encode(str, 'latin1'): how protocols 0-2 pickle bytes."""
        if type(text) is not str or type(codec) is not str or codec.lower() not in _LATIN1:
            raise RefusedPickle(f"_codecs.encode with codec {_shown(codec)}")
        self._copy_bytes(len(text))
        return text.encode("latin-1")

    def _bytes(self):
        """builtins.bytes(): how protocols 0-2 pickle b''."""
        return b""

    def _bytearray(self, data=b"", codec=None):
        """builtins.bytearray(): of (str, 'latin-1') at protocols 0-2, of (bytes,) at 3 and 4."""
        if type(data) is str:
            return bytearray(self._encode(data, codec))
        if type(data) is not bytes or codec is not None:
            raise RefusedPickle(f"builtins.bytearray of {_describe(data)}")
        self._copy_bytes(len(data))
        return bytearray(data)

    def _complex(self, real, imag):
        """builtins.complex(real, imag)."""
        if type(real) is not float or type(imag) is not float:
            raise RefusedPickle(f"builtins.complex of {_describe(real)} and {_describe(imag)}")
        return complex(real, imag)

    # --- arrays --------------------------------------------------------------------------------------------------

    def _array_from_state(self, state):
        """An array from numpy's ndarray state: ([1,] shape, dtype, is_fortran, bytes)."""
        if type(state) is tuple and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise pickle.UnpicklingError("an array's state is not (version, shape, dtype, is_fortran, data)")
        shape, dtype, fortran, data = state
        if type(fortran) not in (bool, int):
            raise pickle.UnpicklingError(f"an array's is_fortran flag is {_describe(fortran)}")
        array = self._array(_plain(dtype), shape, data, bool(fortran))
        # numpy's own ndarray.__setstate__ also hands back native byte order
        return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))

    def _array(self, dtype, shape, data, fortran):
        """A new writable array of a plain `dtype` and `shape`, copied from `data`: bytes, bytearray, or a
        Python 2 str (latin-1, as numpy reads it), whose length must be the shape's bytes exactly."""
        if type(data) not in (bytes, bytearray, str):
            raise pickle.UnpicklingError(f"an array's data is {_describe(data)}, not bytes")
        if type(shape) is not tuple or not all(type(n) is int and 0 <= n < 2**63 for n in shape):
            raise pickle.UnpicklingError(f"an array's shape is not a tuple of ints from 0 to 2**63: {_shown(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != len(data):  # latin-1 text has one character per byte
            raise CostlyPickle(
                f"array bytes: shape {_one_line(str(shape))} of {dtype} needs {nbytes} bytes, the pickle gives "
                f"{len(data)}"
            )
        self.array_bytes += nbytes
        if self.array_bytes > self.max_array_bytes:
            raise CostlyPickle(f"array bytes: more than {self.array_bound}")
        flat = np.frombuffer(data.encode("latin-1") if type(data) is str else data, dtype)
        return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")

    def _copy_bytes(self, n):
        self.copied += n
        if self.copied > self.max_size:
            raise CostlyPickle(f"expanded size: more than {self.size_bound}, counting the bytes of converted strings")

    # --- the finished object -----------------------------------------------------------------------------------

    def _finish(self, root):
        """The loaded object: stand-ins replaced by the arrays and dtypes they hold, in new lists, tuples and dicts
        that keep the pickle's sharing (one copy per container, by id). Refused on the way: a container inside
        itself, nesting deeper than max_depth, an expanded size over its bound. Iterative: no RecursionError."""
        if type(root) not in _CONTAINERS:
            return _leaf(root)[0]
        done = {}  # id(container) -> (its copy, expanded size, nesting depth)
        path = set()  # ids of the containers from the root down to the one being finished
        todo = [root]
        while todo:
            obj = todo[-1]
            if id(obj) in done:
                todo.pop()
            elif id(obj) in path:  # second visit: the children are done
                todo.pop()
                path.remove(id(obj))
                done[id(obj)] = self._copy(obj, done)
            else:
                path.add(id(obj))
                for child in _children(obj):
                    if type(child) in _CONTAINERS and id(child) not in done:
                        if id(child) in path:
                            raise CostlyPickle(f"expanded size: infinite, a {type(child).__name__} inside itself")
                        todo.append(child)
        return done[id(root)][0]

    def _copy(self, obj, done):
        """A container's copy from its finished children, with its expanded size and depth, both bounded."""
        parts = [done[id(c)] if type(c) in _CONTAINERS else (*_leaf(c), 0) for c in _children(obj)]
        size = 1 + sum(part[1] for part in parts) + (sum(_leaf(key)[1] for key in obj) if type(obj) is dict else 0)
        depth = 1 + max((part[2] for part in parts), default=0)
        if depth > self.max_depth:
            raise CostlyPickle(f"nesting depth: more than max_depth={self.max_depth}")
        if size > self.max_size:
            raise CostlyPickle(f"expanded size: more than {self.size_bound}, counting shared objects once per use")
        values = [part[0] for part in parts]
        if type(obj) is dict:
            return dict(zip(obj, values)), size, depth
        return (values if type(obj) is list else tuple(values)), size, depth


def _children(container):
    return container.values() if type(container) is dict else container


def _leaf(obj):
    """What a non-container becomes in the result, and its expanded size."""
    if type(obj) in (str, bytes, bytearray):
        return obj, 1 + len(obj)
    if type(obj) is _ArrayState:
        if obj.array is None:
            raise pickle.UnpicklingError("an array was never given its state (BUILD)")
        return obj.array, 1 + obj.array.nbytes
    if type(obj) is np.ndarray:
        return obj, 1 + obj.nbytes
    if type(obj) is _DtypeState:
        return obj.dtype, 1
    if type(obj) is _Global:
        raise RefusedPickle(f"the global {obj.name} as a value")
    return obj, 1  # None, bool, int, float, complex, numpy scalars: the only other objects the loader makes


def _plain(dtype):
    """The numpy dtype of a dtype stand-in (one built by numpy.dtype from a plain numeric code)."""
    if type(dtype) is not _DtypeState:
        raise pickle.UnpicklingError(f"an array's dtype is {_describe(dtype)}, not a numpy dtype")
    return dtype.dtype


def _dtype_with_state(dtype, state):
    """`dtype` in the byte order of its BUILD state (version, byte order, sub-array, names, fields, item size,
    alignment, flags[, metadata]), once the state asks for nothing else: numpy's dtype.__setstate__ would also
    take a sub-array, fields and flags from it, which is how a pickle turns bytes into object pointers."""
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise RefusedPickle(f"a dtype state of {_shown(state)}")
    order, subarray, names, fields, itemsize, _alignment, flags = state[1:8]
    if subarray is not None:
        raise RefusedPickle("a sub-array dtype")
    if names is not None or fields is not None:
        raise RefusedPickle("a structured dtype")
    if flags != 0:
        raise RefusedPickle(f"dtype flags {_shown(flags)} (an object dtype's)")
    if itemsize not in (-1, dtype.itemsize):
        raise RefusedPickle(f"item size {_shown(itemsize)} for dtype {dtype}")
    if state[8:] not in ((), (None,)):
        raise RefusedPickle("dtype metadata")
    order = _text(order)
    if order not in ("<", ">", "=", "|"):
        raise pickle.UnpicklingError(f"dtype byte order {_shown(order)}")
    return dtype.newbyteorder(order)


def _text(value):
    """A Python 2 str argument as text, whichever `encoding` read it (with "bytes", numpy's codes are bytes)."""
    return value.decode("latin-1") if type(value) is bytes else value


def _tuple_of(n):
    """The handler of TUPLE1, TUPLE2 or TUPLE3: the top n objects as a tuple."""

    def handler(self, _):
        if len(self.stack) < n:
            raise pickle.UnpicklingError("unpickling stack underflow")
        items = tuple(self.stack[-n:])
        del self.stack[-n:]
        self.stack.append(items)

    return handler


def _describe(obj):
    """A short name for an object from the file, for messages."""
    if type(obj) is _Global:
        return f"the global {obj.name}"
    return {_ArrayState: "a numpy array", _DtypeState: "a numpy dtype"}.get(type(obj), type(obj).__name__)


def _shown(obj):
    """A value from the file for a message: the repr of a short str, bytes or number, else its type (the repr of a
    deep or shared container recurses, or takes exponential time)."""
    if type(obj) in (str, bytes):
        return _one_line(repr(obj[:_SHOWN]))
    if type(obj) in (int, float, bool, type(None)) and not (type(obj) is int and obj.bit_length() > 64):
        return repr(obj)
    return _describe(obj)


def _one_line(text):
    """`text` printable on one line (control characters escaped), cut to _SHOWN characters."""
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


_HANDLERS = {
    **dict.fromkeys(
        "INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 "
        "UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8".split(),
        _Loader._push,
    ),
    **dict.fromkeys("STRING BINSTRING SHORT_BINSTRING".split(), _Loader._push_py2_str),
    "NONE": lambda self, _: self.stack.append(None),
    "NEWTRUE": lambda self, _: self.stack.append(True),
    "NEWFALSE": lambda self, _: self.stack.append(False),
    "EMPTY_LIST": lambda self, _: self.stack.append([]),
    "EMPTY_TUPLE": lambda self, _: self.stack.append(()),
    "EMPTY_DICT": lambda self, _: self.stack.append({}),
    "MARK": _Loader._mark,
    "POP": _Loader._pop_op,
    "POP_MARK": _Loader._pop_mark_op,
    "DUP": _Loader._dup,
    "APPEND": _Loader._append,
    "APPENDS": _Loader._appends,
    "LIST": _Loader._list,
    "TUPLE": _Loader._tuple,
    "TUPLE1": _tuple_of(1),
    "TUPLE2": _tuple_of(2),
    "TUPLE3": _tuple_of(3),
    "DICT": _Loader._dict,
    "SETITEM": _Loader._setitem,
    "SETITEMS": _Loader._setitems,
    **dict.fromkeys("PUT BINPUT LONG_BINPUT".split(), _Loader._put),
    "MEMOIZE": _Loader._memoize,
    **dict.fromkeys("GET BINGET LONG_BINGET".split(), _Loader._get),
    "GLOBAL": _Loader._global,
    "STACK_GLOBAL": _Loader._stack_global,
    "REDUCE": _Loader._reduce,
    "BUILD": _Loader._build,
    "PROTO": _Loader._proto,
    "FRAME": lambda self, _: None,  # frames only group the opcodes that follow
}


# The globals the data files name (Python 2 and numpy 1 spell some modules differently), and their stand-ins.
_GLOBALS = {
    **{(m, "_reconstruct"): _Loader._reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _Loader._scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _Loader._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "dtype"): _Loader._new_dtype,
    ("numpy", "ndarray"): None,  # only named as _reconstruct's class
    ("_codecs", "encode"): _Loader._encode,
    **{(m, "bytes"): _Loader._bytes for m in ("builtins", "__builtin__")},
    **{(m, "bytearray"): _Loader._bytearray for m in ("builtins", "__builtin__")},
    **{(m, "complex"): _Loader._complex for m in ("builtins", "__builtin__")},
}
