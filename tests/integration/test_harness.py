"""The harness itself: an instance folder is complete and self-contained."""
import getpass
import os

from conftest import free_port


def test_instance_has_its_own_folders_and_owner(instance):
    for d in (instance.config_dir, instance.queue_dir, instance.data_dir,
              instance.home):
        assert d.is_dir()
        assert str(d).startswith(str(instance.root))
    text = (instance.config_dir / "main.cf").read_text()
    assert f"mail_owner = {getpass.getuser()}" in text
    assert f"queue_directory = {instance.queue_dir}" in text
    # Every path in it lies inside the instance folder.
    for line in text.splitlines():
        for word in line.replace(",", " ").split()[2:]:
            if word.startswith("/"):
                assert word.startswith(str(instance.root)), line


def test_ports_are_free_and_unprivileged(instance):
    assert instance.smtp_port > 1024
    assert free_port() > 1024
    assert f"127.0.0.1:{instance.smtp_port}" in \
        (instance.config_dir / "master.cf").read_text()


def test_env_points_programs_at_the_instance(instance):
    assert instance.env()["TERN_CONFIG_DIR"] == str(instance.config_dir)
    assert os.environ.get("TERN_CONFIG_DIR") != str(instance.config_dir)
