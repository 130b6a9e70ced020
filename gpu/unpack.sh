# Sourced by the check scripts: unpacks the xz-compressed cuda binary that gpu/build-cuda.sh
# staged (gpu-run/cft.xz; xz because the tree plus the carried folder must stay under the
# device tool's 64 MiB) into $BIN, with Python's lzma where the machine has no xz.
# $1: the folder holding cft.xz (default gpu-run).
BIN=${BIN:-/tmp/cft-gpu/cft}
mkdir -p "$(dirname "$BIN")"
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
  "${1:-gpu-run}/cft.xz" "$BIN" && chmod +x "$BIN"
