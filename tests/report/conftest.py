from tests.storage.s3server import fake_aws_env, s3_bucket, s3_server

__all__ = ["fake_aws_env", "s3_bucket", "s3_server"]
