-- The temporary view create_consent_of_now.sql made, when its caller is done with it.
drop view if exists temp.main.consent_of_now
