from service.callbacks import callback_allowed


def test_allow_listed_https_host():
    assert callback_allowed("https://payments.example.com/notify")


def test_unicode_spelling_of_allowed_host():
    assert callback_allowed("https://bücher.example/cb")


def test_plain_http_refused():
    assert not callback_allowed("http://payments.example.com/notify")


def test_other_host_refused():
    assert not callback_allowed("https://attacker.example/notify")
