#!/usr/bin/env bash
# Builds the two test images Rafter's node agent runs, with no registry, as OCI layout
# tarballs ready for `ctr images import`:
#
#   OUTDIR/busybox.tar  docker.io/local/busybox:1  (Cmd ["sh"])
#   OUTDIR/pause.tar    docker.io/local/pause:1    (Cmd ["sleep","2147483647"])
#
# Both share one uncompressed layer made from Debian's busybox-static: /bin/busybox, a
# symlink per applet, /etc/passwd, /etc/group and an empty /tmp. The output is
# deterministic (fixed mtimes and owners), so the same busybox gives the same digests.
#
# Usage: scripts/build-images.sh OUTDIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$1
mkdir -p "$outdir"

busybox=/bin/busybox
if ! [ -x "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
    echo "installing busybox-static"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq busybox-static >/dev/null
fi

# Debian's python3 (never a pyenv shim that may lack the stdlib modules we use).
python=/usr/bin/python3
[ -x "$python" ] || python=python3

"$python" - "$busybox" "$outdir" <<'PY'
import hashlib, io, json, os, subprocess, sys, tarfile

busybox, outdir = sys.argv[1], sys.argv[2]
MTIME = 0

def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info)

def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))

def add_symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    info.mtime = MTIME
    tar.addfile(info)

def build_layer():
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    with open(busybox, "rb") as f:
        binary = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["bin", "etc", "root", "home", "var", "proc", "sys", "dev"]:
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        add_file(tar, "bin/busybox", binary, 0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox" and "/" not in applet:
                add_symlink(tar, "bin/" + applet, "busybox")
        add_file(tar, "etc/passwd",
                 b"root:x:0:0:root:/root:/bin/sh\n"
                 b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n")
    return buf.getvalue()

def blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    add_file(tar, "blobs/sha256/" + digest, data)
    return "sha256:" + digest, len(data)

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

def write_image(path, name, cmd, layer):
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": "rafter scripts/build-images.sh"}],
    })
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        l_digest, l_size = blob(tar, layer)
        c_digest, c_size = blob(tar, config)
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": c_digest, "size": c_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": l_digest, "size": l_size}],
        })
        m_digest, m_size = blob(tar, manifest)
        index = canonical({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m_digest, "size": m_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
            }],
        })
        add_file(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        add_file(tar, "index.json", index)
    os.replace(tmp, path)
    print(f"{path}: {name} manifest {m_digest}")

layer = build_layer()
write_image(os.path.join(outdir, "busybox.tar"), "docker.io/local/busybox:1", ["sh"], layer)
write_image(os.path.join(outdir, "pause.tar"), "docker.io/local/pause:1",
            ["sleep", "2147483647"], layer)
PY
