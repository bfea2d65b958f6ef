"""custom_id templates of Easel's persistent buttons (the ids they carry make them work after a restart)."""

IMAGE_BUTTON = r"easel:img:(?P<image_id>[0-9a-f]{16}\.\d+\.\d+):(?P<action>up|var|keep|del)"
JOB_BUTTON = r"easel:job:(?P<job_id>[0-9a-f]{16}):(?P<action>reroll|upkept|delunkept|cancel|params|retry)"

VARIATION_DENOISE = 0.35  # V buttons: img2img of the image at a low denoising strength
UPSCALE_SCALE = 2.0
MAX_FILES = 10  # Discord's limit per message
IMAGE_BUTTONS = 4  # U1..U4 / V1..V4 like the bots people know


def image_button(image_id: str, action: str) -> str:
    return f"easel:img:{image_id}:{action}"


def job_button(job_id: str, action: str) -> str:
    return f"easel:job:{job_id}:{action}"


def owner_of(user_id: int) -> str:
    """How Discord users appear as job owners in the job service."""
    return f"discord:{user_id}"
