"""`python -m services.transcoder`: run the media worker with settings from the environment."""

from services.transcoder.app import SERVICE, create_app
from services.transcoder.settings import TranscoderSettings
from shared.app_factory import run_service

if __name__ == "__main__":
    run_service(SERVICE, TranscoderSettings, create_app)
