"""Motion representation: skeletons, rotations, HumanML3D features, normalisation, mirroring.

Note: the function `normalize` shadows the submodule of the same name as an attribute of this
package; import the module's other names with `from lead_jax.motion.normalize import ...`.
"""

from lead_jax.motion.features import (FEATURE_GROUPS, extract_features, extract_features_batch,
                                      extract_features_np, feature_slices, features_dim,
                                      recover_from_ric, recover_from_ric_np, recover_from_rot,
                                      recover_root_rot_pos, uniform_skeleton)
from lead_jax.motion.mirror import mirror_features, mirror_joints
from lead_jax.motion.normalize import compute_mean_std, denormalize, normalize
from lead_jax.motion.rotations import (axis_angle_to_quaternion, cont6d_to_matrix,
                                       cont6d_to_quaternion, euler_to_quaternion,
                                       matrix_to_cont6d, matrix_to_quaternion, qbetween, qfix,
                                       qinv, qmul, qnormalize, qrot, quaternion_slerp,
                                       quaternion_to_axis_angle, quaternion_to_cont6d,
                                       quaternion_to_euler, quaternion_to_matrix)
from lead_jax.motion.skeleton import (T2M_TARGET_OFFSETS, SkeletonSpec, forward_kinematics,
                                      forward_kinematics_matrices, get_offsets, get_skeleton,
                                      inverse_kinematics, skeleton_for_joints)

__all__ = [
    "FEATURE_GROUPS", "extract_features", "extract_features_batch", "extract_features_np",
    "feature_slices", "features_dim", "recover_from_ric", "recover_from_ric_np", "recover_from_rot", "recover_root_rot_pos", "uniform_skeleton",
    "mirror_features", "mirror_joints", "compute_mean_std", "denormalize", "normalize",
    "axis_angle_to_quaternion", "cont6d_to_matrix", "cont6d_to_quaternion", "euler_to_quaternion",
    "matrix_to_cont6d", "matrix_to_quaternion", "qbetween", "qfix", "qinv", "qmul", "qnormalize",
    "qrot", "quaternion_slerp", "quaternion_to_axis_angle", "quaternion_to_cont6d",
    "quaternion_to_euler", "quaternion_to_matrix", "T2M_TARGET_OFFSETS", "SkeletonSpec",
    "forward_kinematics", "forward_kinematics_matrices", "get_offsets", "get_skeleton",
    "inverse_kinematics", "skeleton_for_joints",
]
