"""Progress output: plain lines (no carriage returns) where no terminal is, and the CPU time estimate."""
import io

from deepclust.engine.progress import Progress, format_duration


def _steps(progress, n, seconds_per_step=2.0, epoch=0):
    for step in range(1, n + 1):
        progress.step(epoch=epoch, global_step=step, values={"loss": 1.0 / step}, images_per_second=64.0,
                      train_seconds=seconds_per_step * step)


def test_plain_lines_at_epoch_ends_and_every_n_seconds():
    stream = io.StringIO()
    progress = Progress(enabled=True, max_epochs=3, steps_per_epoch=4, every_seconds=3600, stream=stream)
    progress.start_epoch(0, 0, 4)
    _steps(progress, 4)
    progress.end_epoch()
    assert stream.getvalue() == "epoch 1/3  step 4/12  loss 0.2500  64 img/s  0:00:08 training\n"
    progress.every_seconds = 0.0  # now a line after every step
    _steps(progress, 2, epoch=1)
    assert stream.getvalue().count("\n") == 3 and "\r" not in stream.getvalue()
    quiet = io.StringIO()
    Progress(enabled=False, max_epochs=3, steps_per_epoch=4, stream=quiet).end_epoch()
    assert quiet.getvalue() == ""


def test_cpu_hint_estimates_an_epoch_after_the_first_steps(capsys):
    progress = Progress(enabled=False, max_epochs=1000, steps_per_epoch=500, cpu_hint="--preset cpu-fashion-mnist",
                        stream=io.StringIO())
    _steps(progress, 10, seconds_per_step=1.5)
    err = capsys.readouterr().err
    assert err == ("note: this is a paper-sized configuration on a CPU: about 0:12:30 per epoch (1.50 s/step x 500 "
                   "steps), 208:20:00 for the 1000 epochs to go; for a CPU use --preset cpu-fashion-mnist\n")


def test_format_duration():
    assert format_duration(3723.4) == "1:02:03" and format_duration(0) == "0:00:00"
