"""Apache Kafka on this machine, for the tests and `kibitz up --distributed`.

The broker is Apache Kafka itself (KRaft: broker and controller in one process, one node, on
127.0.0.1). Its jars come from Maven Central: Maven copies what `kafka_pom.xml` names into a
cache (`~/.cache/kibitz/kafka-VERSION/libs`, or `KIBITZ_KAFKA_HOME`), and the machine's Java
(17 or newer) runs them. Each broker keeps its log in a data directory of its own, so a broker
stopped and started again on the same directory has lost nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from kibitz.runtime.cluster import LocalBroker, free_port, wait_listening

POM = Path(__file__).with_name("kafka_pom.xml")

# The broker's settings for one node on 127.0.0.1. Replication factors of 1 (there is one
# node); no delay before the first rebalance of a group and short sessions allowed (the tests
# and a local cluster want a killed member noticed in seconds); a small offsets topic (50
# partitions cost seconds at the first group's start); the log cleaner looks every second
# (compacted state topics show their compaction soon).
SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
log.cleaner.backoff.ms=1000
num.partitions=1
"""

LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [%c{1}] %m%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
"""

# A small heap, the serial collector and the quick compiler only (a third less CPU to start):
# one node for a handful of topics, on a machine that also runs the services, the store and
# the engines.
JVM_OPTIONS = [
    *("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
    "-Djava.awt.headless=true",
]


def class_archive() -> Path:
    """Where Kafka's classes are kept as a class-data-sharing archive for this Java (an archive
    holds one JVM build's view of the classes: another Java gets another file)."""
    binary = Path(java()).resolve()
    stamp = f"{binary}:{binary.stat().st_mtime_ns}".encode()
    return kafka_home() / f"classes-{hashlib.sha256(stamp).hexdigest()[:12]}.jsa"


def jvm_options() -> list[str]:
    """JVM_OPTIONS, with the class archive once there is one: the JVM maps the classes a broker
    loads instead of reading them from the jars (measured: ready in 1.2 s instead of 2.1-2.7,
    1.7 CPU-s instead of 2.7)."""
    archive = class_archive()
    shared = [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []
    return [*JVM_OPTIONS, *shared]


def build_class_archive(timeout: float = 120.0) -> Path | None:
    """Write the class archive, once: a broker started on a scratch log, stopped cleanly (the
    JVM writes the classes it loaded as it exits). Returns the archive, or None when this Java
    cannot write one (brokers then start without it)."""
    archive = class_archive()
    if archive.exists():
        return archive
    partial = archive.with_name(f"{archive.name}.partial-{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="kibitz-kafka-classes-") as scratch:
            broker = start_kafka(
                Path(scratch) / "broker", jvm_extra=[f"-XX:ArchiveClassesAtExit={partial}"]
            )
            broker.process.terminate()
            try:
                broker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                broker.process.kill()  # no clean exit, no archive: never leave it running
                broker.process.wait()
                raise
        if partial.exists():
            os.replace(partial, archive)
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        partial.unlink(missing_ok=True)
    return archive if archive.exists() else None


def kafka_version() -> str:
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not found:
        raise RuntimeError(f"{POM} names no kafka.version")
    return found.group(1)


def kafka_home() -> Path:
    given = os.environ.get("KIBITZ_KAFKA_HOME")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kibitz" / f"kafka-{kafka_version()}"


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not Path(found).exists():
        raise RuntimeError("Apache Kafka needs Java 17 or newer: install it (e.g. openjdk-17-jre)")
    return found


def fetched() -> bool:
    return (kafka_home() / "libs" / ".complete").exists()


def fetch() -> Path:
    """Apache Kafka's jars in the cache, fetched from Maven Central with Maven the first time;
    returns their directory. Concurrent fetches each fetch into a directory of their own, and
    the first to finish is kept."""
    libs = kafka_home() / "libs"
    if fetched():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Apache Kafka's jars are fetched with Maven: install it (maven)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    partial = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [
            *(mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"),
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        cwd=libs.parent,
    )
    if done.returncode != 0 or not any(partial.glob("kafka_*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        tail = (done.stdout + done.stderr).strip()[-800:]
        raise RuntimeError(f"Maven could not fetch Apache Kafka {kafka_version()}: {tail}")
    (partial / ".complete").touch()
    try:
        partial.rename(libs)
    except OSError:  # another fetch finished first
        shutil.rmtree(partial, ignore_errors=True)
    return libs


def _classpath() -> str:
    if not fetched():
        raise RuntimeError(
            f"Apache Kafka {kafka_version()} is not fetched yet: `kibitz broker fetch` "
            "(Maven and Java) or ./dev.sh does it"
        )
    return str(kafka_home() / "libs" / "*")


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _formatted_template() -> Path:
    """A log directory formatted once by Kafka's storage tool and copied for every new broker
    (the tool is a JVM start of its own: seconds, on a busy machine). The quorum is given by
    `controller.quorum.voters`, so nothing in the copy depends on a port."""
    template = kafka_home() / "formatted"
    if (template / "meta.properties").exists():
        return template
    partial = template.with_name(f"formatted.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = partial.parent / f"format-{os.getpid()}.properties"
    config.write_text(
        SERVER_PROPERTIES.format(port=free_port(), controller=free_port(), data=partial)
    )
    try:
        done = subprocess.run(
            [
                *(java(), *jvm_options(), "-cp", _classpath(), "kafka.tools.StorageTool"),
                *("format", "-t", _cluster_id(), "-c", str(config), "--ignore-formatted"),
            ],
            capture_output=True,
            text=True,
        )
    finally:
        config.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"Kafka's storage tool failed: {(done.stdout + done.stderr)[-800:]}")
    try:
        partial.rename(template)
    except OSError:  # another process formatted it first
        shutil.rmtree(partial, ignore_errors=True)
    return template


def start_kafka(
    data_dir: Path,
    *,
    port: int | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    jvm_extra: list[str] | None = None,
) -> LocalBroker:
    """Start Apache Kafka on 127.0.0.1 with its log in `data_dir` (formatted the first time,
    kept after: a broker started again on it has its topics and offsets), and wait until it
    accepts connections. Its output goes to `data_dir/broker.log`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "log"
    config = data_dir / "server.properties"
    if not (log_dir / "meta.properties").exists():
        shutil.rmtree(log_dir, ignore_errors=True)
        shutil.copytree(_formatted_template(), log_dir)
    before = config.read_text() if config.exists() else ""  # the same ports as before:
    old_port = re.search(r"PLAINTEXT://127\.0\.0\.1:(\d+)", before)  # clients know them
    old_controller = re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", before)
    port = port or (int(old_port.group(1)) if old_port else free_port())
    controller = int(old_controller.group(1)) if old_controller else free_port()
    config.write_text(SERVER_PROPERTIES.format(port=port, controller=controller, data=log_dir))
    (data_dir / "log4j2.properties").write_text(LOG4J2)
    argv = [
        *(java(), *jvm_options(), *(jvm_extra or [])),
        f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
        *("-cp", _classpath(), "kafka.Kafka", str(config)),
    ]
    log_path = data_dir / "broker.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_listening(process, port, log_path, "broker", timeout)
    return LocalBroker(port, process, log_path, argv)
