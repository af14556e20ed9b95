"""tests/integration/bureau.py: build and sign warnings as a bureau would.

Independent of tocsin's code: the Warning is encoded with Debian's
python3-protobuf (module generated from proto/warning.proto by protoc at
import time) and signed with python3-cryptography's Ed25519.
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SENDER = "met.fuzhou.gov.cn"


def load_pb(src_dir):
    out = tempfile.mkdtemp(prefix="tocsin-pb-")
    try:
        subprocess.run(["protoc", "--python_out=" + out, "-I", os.path.join(src_dir, "proto"),
                        "warning.proto"], check=True)
        sys.path.insert(0, out)
        import warning_pb2
    finally:  # the module is loaded: its generated source is not needed any more
        if out in sys.path:
            sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)
    return warning_pb2


class Bureau:
    """One signing key, its keyring entry, and a warning factory."""

    def __init__(self, pb, key_id="bureau-1", segments="350102",
                 statuses="Actual, Exercise, Test, Draft"):
        self.pb = pb
        self.key_id = key_id
        self.key = ed25519.Ed25519PrivateKey.generate()
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.keyring = ("[%s]\nsender = %s\nalgorithm = ed25519\npublic_key = %s\n"
                        "segments = %s\nstatuses = %s\n"
                        % (key_id, SENDER, base64.b64encode(der).decode(), segments, statuses))
        self.n = 0

    def warning(self, ident=None, targets=("350102001",), severity=None, urgency=None,
                colour=None, status=None, msg_type=None, references=(), expires_in=3600,
                infos=(("zh-CN", "鼓楼区台风红色预警", "请留在室内。"),)):
        pb = self.pb
        self.n += 1
        now = int(time.time())
        w = pb.Warning(identifier=ident or "w-%d-%d" % (os.getpid(), self.n), sender=SENDER,
                       sent=now, status=status or pb.ACTUAL, msg_type=msg_type or pb.ALERT,
                       scope=pb.PUBLIC, colour=colour or pb.RED, targets=list(targets),
                       references=list(references))
        for lang, headline, instruction in infos:
            w.info.add(language=lang, category=[pb.MET], event="台风",
                       urgency=urgency or pb.IMMEDIATE, severity=severity or pb.EXTREME,
                       certainty=pb.OBSERVED, headline=headline, instruction=instruction,
                       expires=now + expires_in)
        return w

    def sign(self, w):
        payload = w.SerializeToString()
        return self.pb.SignedWarning(payload=payload, signature=self.key.sign(payload),
                                     key_id=self.key_id).SerializeToString()
