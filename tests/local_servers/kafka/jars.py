"""The Kafka runtime: jars resolved from Maven Central into a per-user cache, and the JDK.

The jar cache is ``$DBT_KAFKA_SYNC_CACHE/kafka-<version>/libs`` or, when the variable is
unset, ``~/.cache/dbt-kafka-sync/kafka-<version>/libs``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from local_servers import processes
from local_servers.kafka.errors import KafkaLocalError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Matches the log4j-core that kafka 4.1.1 depends on; the slf4j 1.x binding routes
# Kafka's slf4j logging into log4j2.
LOG4J_VERSION = "2.24.3"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_MARKER = ".dbt-kafka-sync-complete"


def cache_dir() -> Path:
    """Return the per-version cache directory (holds ``pom.xml`` and ``libs/``).

    Returns:
        ``$DBT_KAFKA_SYNC_CACHE/kafka-<version>`` or
        ``~/.cache/dbt-kafka-sync/kafka-<version>``.
    """
    return processes.cache_root() / f"kafka-{KAFKA_VERSION}"


def _pom_xml() -> str:
    """Render the throwaway Maven project whose runtime dependencies form the classpath."""
    deps = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
        ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ]
    rendered = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.dbt-kafka-sync</groupId>\n"
        f"  <artifactId>kafka-local-runtime</artifactId><version>{KAFKA_VERSION}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{rendered}\n  </dependencies>\n"
        "</project>\n"
    )


def _cache_is_complete(libs: Path, digest: str) -> bool:
    """Tell whether ``libs`` holds a finished resolution of the current pom."""
    marker = libs / _MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Maven colours output even in batch mode


def _run_maven(pom: Path, output_dir: Path) -> None:
    """Copy the pom's runtime dependency jars into ``output_dir``.

    Raises:
        KafkaLocalError: If Maven is missing or fails; the message holds its output.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError("Maven ('mvn') is not on PATH; it is needed to fetch Kafka jars")
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    run_tool(cmd, f"Maven failed resolving Kafka {KAFKA_VERSION} jars", "mvn")


def run_tool(cmd: list[str], failure: str, tool: str) -> None:
    """Run a build tool; on failure raise with the command and its (de-colored) output."""
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise KafkaLocalError(
            f"{failure} (exit {result.returncode}).\n"
            f"Command: {' '.join(cmd)}\n--- {tool} output ---\n"
            f"{_ANSI_ESCAPE.sub('', result.stdout)}"
        )


def fetch_jars() -> Path:
    """Resolve the Kafka broker and tools jars into the cache, unless already complete.

    Returns:
        The directory holding the jars (use ``<dir>/*`` as the Java classpath).

    Raises:
        KafkaLocalError: If Maven fails or the expected jars are missing afterwards.
    """
    root = cache_dir()
    libs = root / "libs"
    pom = _pom_xml()
    digest = hashlib.sha256(pom.encode()).hexdigest()
    if _cache_is_complete(libs, digest):
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with processes.file_lock(root / ".lock"):
        if _cache_is_complete(libs, digest):  # another process finished while we waited
            return libs
        print(f"Resolving Kafka {KAFKA_VERSION} jars with Maven into {libs} ...", file=sys.stderr)
        (root / "pom.xml").write_text(pom, encoding="utf-8")
        # Resolve into a staging dir so an interrupted run never looks complete.
        staging = root / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _run_maven(root / "pom.xml", staging)
            if not (staging / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file():
                raise KafkaLocalError(f"Maven succeeded but copied no Kafka jar into {staging}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / _MARKER).write_text(digest + "\n", encoding="utf-8")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


# ---------------------------------------------------------------------------------- JDK


def java() -> str:
    """Locate the ``java`` executable, preferring ``$JAVA_HOME``."""
    return _jdk_tool("java", "Java ('java') is not on PATH and JAVA_HOME is not set")


def javac() -> str:
    """Locate the ``javac`` executable (a JDK), preferring ``$JAVA_HOME``."""
    return _jdk_tool(
        "javac",
        "javac is not on PATH and JAVA_HOME has none; a JDK (not just a JRE) is needed "
        "to compile the broker's MSK IAM callback handler",
    )


def _jdk_tool(name: str, missing: str) -> str:
    """``$JAVA_HOME/bin/NAME`` if there is one, else NAME on PATH; ``missing`` if neither."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).is_file():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise KafkaLocalError(missing)
    return found
