"""numpy arrays to and from ``TensorProto`` as TensorFlow encodes them, for clients without TensorFlow.

``make_tensor_proto`` writes what ``tf.make_tensor_proto`` writes for the dtypes tf-qa's signatures take (the
same bytes: a test compares them), and ``make_ndarray`` reads every encoding ``tf.make_ndarray`` reads for them.

Example:

>>> proto = make_tensor_proto(np.array([b"Paris", "café".encode()], dtype=object))
>>> proto.dtype, [d.size for d in proto.tensor_shape.dim], list(proto.string_val)
(7, [2], [b'Paris', b'caf\\xc3\\xa9'])
>>> make_ndarray(make_tensor_proto(np.array([[1, 2], [3, 4]], np.int32))).tolist()
[[1, 2], [3, 4]]
"""

from __future__ import annotations

import numpy as np

from tf_qa.protos import DataType, TensorProto

#: numpy dtype -> (TensorFlow DataType, the TensorProto field of its values when not in tensor_content).
_DTYPES = {
    np.dtype(np.float32): (DataType.values_by_name["DT_FLOAT"].number, "float_val"),
    np.dtype(np.float64): (DataType.values_by_name["DT_DOUBLE"].number, "double_val"),
    np.dtype(np.int32): (DataType.values_by_name["DT_INT32"].number, "int_val"),
    np.dtype(np.int64): (DataType.values_by_name["DT_INT64"].number, "int64_val"),
    np.dtype(np.bool_): (DataType.values_by_name["DT_BOOL"].number, "bool_val"),
}
_BY_NUMBER = {number: (dtype, field) for dtype, (number, field) in _DTYPES.items()}
_STRING = DataType.values_by_name["DT_STRING"].number
#: Numeric dtypes TensorFlow writes as raw bytes (tensor_content) when a tensor has more than one element.
_RAW_CONTENT = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64)}


def make_tensor_proto(array: np.ndarray) -> TensorProto:
    """A ``TensorProto`` of ``array``: bytes (an object array) as DT_STRING, or float32/64, int32/64 or bool."""
    proto = TensorProto()
    fill_tensor_proto(proto, array)
    return proto


def fill_tensor_proto(proto, array: np.ndarray) -> None:
    """Writes ``array`` into ``proto``, an empty TensorProto of any generated class: tf-qa's own, or TensorFlow's
    in a server's response (the same fields; filled in place, as messages of two classes cannot be copied)."""
    array = np.asarray(array)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == object:
        proto.dtype = _STRING
        proto.string_val.extend(array.ravel().tolist())
        return
    if array.dtype not in _DTYPES:
        raise TypeError(f"unsupported dtype {array.dtype}")
    proto.dtype, field = _DTYPES[array.dtype]
    if array.dtype in _RAW_CONTENT and array.size > 1:
        proto.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()
    else:
        getattr(proto, field).extend(array.ravel().tolist())


def make_ndarray(proto: TensorProto) -> np.ndarray:
    """The array of a ``TensorProto`` of the dtypes above: raw content, or values (the last one repeated to fill
    the shape, as TensorFlow reads it)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == _STRING:
        values = list(proto.string_val)
        values += [values[-1] if values else b""] * (size - len(values))
        return np.array(values, dtype=object).reshape(shape)
    if proto.dtype not in _BY_NUMBER:
        raise TypeError(f"unsupported tensor dtype {DataType.values_by_number.get(proto.dtype, proto.dtype)}")
    dtype, field = _BY_NUMBER[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.array(getattr(proto, field), dtype=dtype)
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size != size:
        values = np.pad(values, (0, size - values.size), "edge")
    return values.reshape(shape)
