"""custom_id templates of Easel's persistent buttons (the ids they carry make them work after a restart)."""


def image_template(action: str) -> str:
    """An image's button: by image id (a job of at most four images) or, on a page of a bigger job, by the page it
    sits on (shown again after the action) and the image's number in the job (1-based)."""
    return (rf"easel:(?:img:(?P<image_id>[0-9a-f]{{16}}\.\d+\.\d+)"
            rf"|pimg:(?P<job_id>[0-9a-f]{{16}}):(?P<page>\d{{1,4}}):(?P<number>\d{{1,5}})):{action}")


def job_template(action: str) -> str:
    return rf"easel:job:(?P<job_id>[0-9a-f]{{16}}):{action}"


# Previous / next carry the page they go to, and their direction (custom_ids are unique per message).
PAGE_BUTTON = r"easel:page:(?P<job_id>[0-9a-f]{16}):(?P<page>\d{1,4}):(?P<direction>prev|next)"

VARIATION_DENOISE = 0.35  # V buttons: img2img of the image at a low denoising strength
UPSCALE_SCALE = 2.0
MAX_FILES = 10  # Discord's limit per message
IMAGE_BUTTONS = 4  # U1..U4 / V1..V4 like the bots people know; also the images on one page of a bigger job
QUEUE_UNREACHABLE = "⚠️ The queue is unreachable, try again in a minute."


def image_button(image_id: str, action: str) -> str:
    return f"easel:img:{image_id}:{action}"


def job_button(job_id: str, action: str) -> str:
    return f"easel:job:{job_id}:{action}"


def page_image_button(job_id: str, page: int, number: int, action: str) -> str:
    return f"easel:pimg:{job_id}:{page}:{number}:{action}"


def page_button(job_id: str, page: int, direction: str) -> str:
    return f"easel:page:{job_id}:{page}:{direction}"


def owner_of(user_id: int) -> str:
    """How Discord users appear as job owners in the job service."""
    return f"discord:{user_id}"
