from compress.calibrate.errors import CalibrationError


def test_error_protocol():
    err = CalibrationError("no usable image in x", "use .jpg files")
    assert isinstance(err, ValueError)
    assert err.exit_code == 4
    assert err.hint == "use .jpg files"
    assert str(err) == "no usable image in x (use .jpg files)"
    assert str(CalibrationError("plain")) == "plain"
