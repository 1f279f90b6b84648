-- The merged rows in place of those delete_merged_buyer_days.sql removed (same transaction).
INSERT INTO work.buyer_days BY NAME SELECT * FROM merged_buyer_days
