"""The four PyTorch programs of examples/ (MNIST, the CIFAR-10 tutorial, a CIFAR ResNet-18 script
with --resume, DCGAN), written as for PyTorch with `torch` renamed to `minicnn`, each run for a
few steps in a fresh process, as a user runs them."""
import os
import pathlib
import subprocess
import sys

import minicnn as mc

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

def _run(script, *args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(EXAMPLES.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_mnist(tmp_path):
    out = _run("mnist.py", "--digits", "--dry-run", "--epochs", "1", "--test-batch-size", "360",
               "--save-model", cwd=tmp_path)
    assert "Train Epoch: 1 [0/" in out and "Test set: Average loss:" in out
    state = mc.load(tmp_path / "mnist_cnn.pt")
    assert state["fc1.weight"].shape == (128, 9216)


def test_cifar10_tutorial(tmp_path):
    out = _run("cifar10_tutorial.py", "--fake-data", "--steps", "3", cwd=tmp_path)
    assert "Finished Training" in out and "Accuracy of the network on the 12 test images" in out
    assert (tmp_path / "cifar_net.pth").is_file() and (tmp_path / "train_batch.png").is_file()


def test_cifar_resnet_and_resume(tmp_path):
    args = ["--fake-data", "--steps", "1", "--batch-size", "2", "--test-batch-size", "50",
            "--epochs", "1"]
    out = _run("cifar_resnet.py", *args, cwd=tmp_path)
    assert "Saving.." in out and (tmp_path / "checkpoint" / "ckpt.pth").is_file()
    saved = mc.load(tmp_path / "checkpoint" / "ckpt.pth")
    assert saved["epoch"] == 0 and saved["acc"] > 0 and "layer4.1.bn2.running_var" in saved["net"]
    out = _run("cifar_resnet.py", *args, "--resume", cwd=tmp_path)
    assert f"resumed at epoch 0 with best accuracy {saved['acc']:.3f}%" in out


def test_dcgan(tmp_path):
    out = _run("dcgan.py", "--dataset", "fake", "--dry-run", "--batchSize", "4", "--ngf", "8",
               "--ndf", "8", "--nz", "16", "--manualSeed", "1", "--outf", str(tmp_path),
               cwd=tmp_path)
    assert "[0/1][0/250] Loss_D:" in out
    for name in ("real_samples.png", "fake_samples_epoch_000.png", "netG_epoch_0.pth",
                 "netD_epoch_0.pth"):
        assert (tmp_path / name).is_file(), name
