#include <gtest/gtest.h>
#include "test_util.h"
TEST(Placeholder, Half) { EXPECT_EQ(ngs::half_to_float(0x3c00), 1.0f); }
