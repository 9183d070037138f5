-- Installed and imported certificates were recorded as issued elsewhere whatever their
-- issuer; 2 = not decided yet: start-up decides from the certificate (decide_crl_membership).

UPDATE credential SET issued_by_agent = 2 WHERE issued_by_agent = 0 AND certificate_serial IS NOT NULL;
