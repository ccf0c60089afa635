# Sourced by the Flink side-by-side scripts: sets T (the cargo target
# directory), OUT ($T/flink) and FLINK_LIB, checks for a JDK and installs
# Flink 2.3 from PyPI (apache-flink-libraries, 329 MB) under $OUT once.
# $1: the calling script's name, for the error message.
T=${CARGO_TARGET_DIR:-target}
OUT=$T/flink
FLINK_LIB=$OUT/pyflink/pyflink/lib
mkdir -p "$OUT"
command -v javac >/dev/null || { echo "$1 needs a JDK 17: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
if [ ! -f "$FLINK_LIB/flink-dist-2.3.0.jar" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$OUT/pyflink" apache-flink-libraries==2.3.0
fi
