"""`python -m services.gateway`: serve the public port with settings from the environment."""

from services.gateway.app import SERVICE, create_app
from services.gateway.settings import GatewaySettings
from shared.app_factory import run_service

if __name__ == "__main__":
    run_service(SERVICE, GatewaySettings, create_app)
