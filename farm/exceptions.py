"""Every error farm raises on purpose. One root, so the CLI can turn any of them into one line."""


class FarmError(Exception):
    """Root of farm's errors: a problem a user can understand and act on."""


class SettingsError(FarmError):
    """A FARM_* setting that does not parse (farm.defaults.check names every one)."""


class SceneError(FarmError):
    """The scene file is unreadable, malformed, or asks for something impossible."""


class JobDataError(FarmError):
    """A job's own data in Redis (its scene document, its files) is missing, damaged,
    unreadable or over a limit. The same for every worker, so the job fails at once and
    no worker is blamed for it."""


class AssetError(JobDataError):
    """A file the scene names could not be fetched from Redis or does not match its digest."""


class DeviceError(FarmError):
    """No usable OpenCL device, or the one asked for does not exist."""


class KernelBuildError(DeviceError):
    """The OpenCL program failed to build; `log` holds the compiler's output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class BrokerError(FarmError):
    """The Redis broker cannot be reached or does not answer."""


class JobError(FarmError):
    """A job cannot finish: a bucket failed, the job vanished, no worker answers."""


class JobVanished(JobError):
    """The job's record is gone from Redis: expired, deleted, or lost with a Redis restart."""


class MalformedJob(JobError, JobDataError):
    """A job's record in Redis does not describe a job (a field missing, not a number, over
    the limits): the job's fault, so it fails once, naming the field; no worker's."""


class JobCancelled(JobError):
    """The job was cancelled (by `farm cancel`, or by another client)."""


class InvalidTile(FarmError):
    """A stored tile that is not a tile of this job's bucket, or holds non-finite values."""


class InjectedFault(FarmError):
    """An error a worker raised on purpose because FARM_FAULTS told it to (tests, `farm chaos`)."""


class FarmSetupError(FarmError):
    """The embedded farm (local Redis and workers) could not be started."""


class DenoiserUnavailable(FarmError):
    """--denoise asked for Intel Open Image Denoise and it does not load; the raw frame is kept."""


class OutputError(FarmError):
    """An image or report could not be written (no room, no permission, a writer's own
    error): nothing is left under its name (farm.client.film.write_whole); `path` is the file."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


class Terminated(KeyboardInterrupt):
    """SIGTERM: a command stops as after Ctrl-C (job cancelled, what was rendered saved,
    the embedded farm closed), without asking. Not a FarmError: nothing went wrong."""
