-- Claims on buckets, as database_claims for databases: object storage cannot create a bucket
-- with its mark in one step (CreateBucket, then the mark object), nor delete the mark with the
-- bucket (the mark, then DeleteBucket). A run killed in between leaves an empty, unmarked
-- bucket; the claim, written before and removed after, is what lets the next run finish it
-- rather than refuse it as foreign. `location` is the store's name for the bucket.
CREATE TABLE bucket_claims (
    location   text PRIMARY KEY,
    mark       text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
