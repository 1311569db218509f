"""Stubs for every Backplane service, built at run time from a descriptor set compiled from proto/.

Debian's grpc-tools bundles a protoc too old for proto3 `optional`, so the test compiles proto/ with buf
(`buf build proto -o backplane.binpb`) and this module builds the message classes and the stubs from
that: nothing generated is committed, and any method of any service can be called.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import grpc


def _message_class(descriptor):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class Protos:
    """Message classes by full name: protos["backplane.naming.v1.BindRequest"](name="x")."""

    def __init__(self, descriptor_set_path):
        with open(descriptor_set_path, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        self.pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            self.pool.Add(file)
        self._classes = {}

    def __getitem__(self, full_name):
        if full_name not in self._classes:
            self._classes[full_name] = _message_class(self.pool.FindMessageTypeByName(full_name))
        return self._classes[full_name]

    def enum(self, enum_full_name, value_name):
        return self.pool.FindEnumTypeByName(enum_full_name).values_by_name[value_name].number

    def stub(self, channel, service_full_name):
        return Stub(self, channel, self.pool.FindServiceByName(service_full_name))


class Stub:
    """One callable per method, snake_case or as in the proto: stub.Bind(request), stub.bind(request)."""

    def __init__(self, protos, channel, service):
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            serialize = lambda m: m.SerializeToString()  # noqa: E731
            deserialize = protos[method.output_type.full_name].FromString
            if method.client_streaming and method.server_streaming:
                call = channel.stream_stream(path, serialize, deserialize)
            elif method.client_streaming:
                call = channel.stream_unary(path, serialize, deserialize)
            elif method.server_streaming:
                call = channel.unary_stream(path, serialize, deserialize)
            else:
                call = channel.unary_unary(path, serialize, deserialize)
            setattr(self, method.name, call)


def reason_of(err):
    """The backplane-reason trailer of a failed call (the stable machine-readable reason)."""
    for key, value in err.trailing_metadata() or ():
        if key == "backplane-reason":
            return value
    return None


__all__ = ["Protos", "Stub", "reason_of", "grpc"]
