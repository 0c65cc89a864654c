// The arithmetic of the layers' products: fp32, or bf16 operands with fp32 sums where a
// layer has such a plan and the CPU the instructions (train.precision, Model::Options).
#pragma once

namespace hubel {

enum class Precision { fp32, bf16 };

}  // namespace hubel
